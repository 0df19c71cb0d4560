#!/usr/bin/env python3
"""The evaluator's greedy answers on the CPU (float32) and on the GPU (bf16), on the tiny model: how many differ.

Both runs use the evaluator's own pieces (the generation contract's prompt ids, the transformers engine, the
graders) on the tiny profile's base model and test rows. Greedy decoding is deterministic on each device, so
every difference comes from the arithmetic: float32 on the CPU against bf16 on the GPU. Prints the accuracy on
each device, the problems whose answers differ, and the first token where the first few differ (a bf16 rounding
flips a near-tie between two tokens, and the continuation then diverges).

Usage: python benchmarks/eval_cpu_vs_gpu.py [--limit N]     (on a machine with a GPU)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sft_vs_rlvr import data_prep, generation, prompts, settings  # noqa: E402
from sft_vs_rlvr.evaluate import engines, grading  # noqa: E402
from sft_vs_rlvr.tiny import model as tiny_model  # noqa: E402


def answers(model: Path, ids: list[list[int]], device: str, max_new_tokens: int, stop) -> list[engines.Completion]:
    engine = engines.TransformersEngine(str(model), 64, max_new_tokens, device=device)
    done: dict[int, list[engines.Completion]] = {}
    engine.generate(ids, engines.greedy(max_new_tokens, 42, stop), (), lambda batch: done.update(batch))
    return [done[i][0] for i in range(len(ids))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=0)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("eval_cpu_vs_gpu: no GPU visible", file=sys.stderr)
        return 2
    shared = settings.load("tiny").shared
    model = tiny_model.ensure(shared["chat_template"], shared["instruction"], log=lambda _: None)
    rows = data_prep.build(shared)["test.jsonl"]
    rows = rows[: args.limit] if args.limit else rows
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    contract = generation.Contract.from_shared(shared)
    ids = [generation.prompt_ids(tokenizer, prompts.template_text(shared["chat_template"]), r["messages"], contract)
           for r in rows]
    cpu = answers(model, ids, "cpu", shared["max_response_length"], contract.stop_strings)
    gpu = answers(model, ids, "cuda", shared["max_response_length"], contract.stop_strings)
    for name, completions in (("CPU float32", cpu), ("GPU bf16", gpu)):
        correct = sum(grading.robust_grade(c.text, str(r["ground_truth"])).correct for c, r in zip(completions, rows))
        print(f"{name}: {correct} of {len(rows)} correct ({correct / len(rows):.1%})")
    differ = [i for i, (a, b) in enumerate(zip(cpu, gpu)) if a.text != b.text]
    graded = [i for i in differ if grading.robust_grade(cpu[i].text, str(rows[i]["ground_truth"])).correct
              != grading.robust_grade(gpu[i].text, str(rows[i]["ground_truth"])).correct]
    print(f"responses that differ: {len(differ)} of {len(rows)}; of them, graded differently: {len(graded)}")
    for i in differ[:3]:
        a, b = tokenizer(cpu[i].text)["input_ids"], tokenizer(gpu[i].text)["input_ids"]
        first = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        print(f"  {rows[i]['id']}: first differing token at position {first} of {max(len(a), len(b))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

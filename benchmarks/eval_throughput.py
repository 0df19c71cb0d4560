"""Transformers engine throughput on the tiny profile: batched generation against one problem at a time.

Issue bound: at least 5 times the throughput of one-at-a-time generation on 200 problems (CPU).
Prints both figures and the ratio; not a test (timings depend on the machine).

    python benchmarks/eval_throughput.py [--problems 200] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import time

from sft_vs_rlvr import data_prep, prompts
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.evaluate import engines as eval_engines
from sft_vs_rlvr.tiny import model as tiny_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    shared = settings_mod.load("tiny").shared
    model = tiny_model.ensure(shared["chat_template"], shared["instruction"], log=lambda _: None)
    rows = data_prep.build(shared)["test.jsonl"][: args.problems]
    template = prompts.template_text(shared["chat_template"])
    decoding = eval_engines.greedy(shared["max_response_length"], shared["seed"])
    figures = {}
    for batch_size in (args.batch_size, 1):
        engine = eval_engines.TransformersEngine(str(model), batch_size)
        texts = [prompts.render(template, r["messages"], engine.tokenizer.eos_token, True) for r in rows]
        tokens = 0

        def count(batch):
            nonlocal tokens
            tokens += sum(c.tokens for _, cs in batch for c in cs)

        started = time.perf_counter()
        engine.generate(texts, decoding, (), count)
        wall = time.perf_counter() - started
        figures[batch_size] = (len(rows) / wall, tokens / wall, wall)
        print(f"batch size {batch_size:>3}: {wall:7.1f} s, {len(rows) / wall:7.1f} problems/s, {tokens / wall:8.0f} tokens/s")
    ratio = figures[args.batch_size][0] / figures[1][0]
    print(f"batched / one at a time: {ratio:.1f}x problems per second (bound: at least 5x)")


if __name__ == "__main__":
    main()

"""The RL pilot: before any RL money is spent, does the starting model give GRPO something to learn from?

GRPO learns only from groups whose rewards differ (grpo_fast drops the others: filter_zero_std_samples). A
starting model that never stops, or never or always solves, gives groups of equal rewards and an RL run that
learns nothing while it bills GPU-hours. The pilot samples the exact RL setting on a few hundred training
prompts, grades the samples with the reward, and refuses the launch below a threshold.

Exactly as the RL run: the training prompts (seeded choice of `pilot_prompts` of them), the shared template
and tokenization of the generation contract (generation.py: the ids grpo_fast builds, BOS as it adds it),
samples_per_prompt samples each at the RL temperature, top-p 1, max_response_length new tokens, stopping at
EOS or a contract stop string, and the reward: open-instruct's GSM8K verifier (evaluate/grading.py). vLLM
where it runs (a GPU box, in open-instruct's environment, as the launcher calls it), transformers elsewhere.

Writes <run folder>/pilot.json (docs/FORMATS.md) and prints it: stop rate, truncation rate, mean reward, the
share of groups with reward variance (the share of each RL batch that will train), mean response length, the
first prompt's token ids and three example responses. A finished pilot of the same starting model and
settings is reused; one of another model or other settings is redone (and said).

Thresholds (configs/rlvr.toml): pilot_prompts, pilot_min_informative_groups. Below the threshold the launch is
refused with the numbers and the fix; FORCE=1 launches anyway (and says so).

Usage: python -m sft_vs_rlvr.launch.pilot --run-dir DIR --model PATH [--tokenizer PATH] --profile P [--force]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from sft_vs_rlvr import atomic, contract, generation, prompts
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.errors import UserError, cli
from sft_vs_rlvr.evaluate import engines, grading
from sft_vs_rlvr.evaluate.fingerprints import weights_fingerprint

EXAMPLES = 3


def choose_rows(rows: list[dict[str, Any]], count: int, seed: int) -> list[dict[str, Any]]:
    """`count` training rows, the same ones for the same seed whatever runs the pilot."""
    if count >= len(rows):
        return list(rows)
    return [rows[i] for i in sorted(random.Random(f"pilot/{seed}").sample(range(len(rows)), count))]


def summarize(groups: list[list[engines.Completion]], golds: list[str]) -> dict[str, Any]:
    """The pilot's numbers from its sampled groups (one group of samples per prompt)."""
    rewards = [[float(grading.verifier_grade(c.text, gold).correct) for c in group] for group, gold in zip(groups, golds)]
    flat = [c for group in groups for c in group]
    informative = sum(len(set(r)) > 1 for r in rewards)
    return {
        "prompts": len(groups), "samples": len(flat),
        "mean_reward": sum(map(sum, rewards)) / max(1, len(flat)),
        "informative_groups": informative / max(1, len(groups)),
        "groups_all_correct": sum(min(r) == 1.0 for r in rewards if r) / max(1, len(groups)),
        "groups_all_wrong": sum(max(r) == 0.0 for r in rewards if r) / max(1, len(groups)),
        "stop_rate": sum(not c.truncated for c in flat) / max(1, len(flat)),
        "truncation_rate": sum(c.truncated for c in flat) / max(1, len(flat)),
        "mean_response_tokens": sum(c.tokens for c in flat) / max(1, len(flat)),
    }


def key(settings: settings_mod.Settings, model: str, fingerprint: str) -> dict[str, Any]:
    """What a pilot's result depends on: a pilot with another key is not reused."""
    rl = settings.rlvr
    return {"model": model, "model_fingerprint": fingerprint, "shared": settings.fingerprint("shared"),
            "rlvr": {k: rl[k] for k in ("samples_per_prompt", "temperature", "pilot_prompts")}}


def run(settings: settings_mod.Settings, run_dir: Path, model: str, tokenizer_path: str | None, data_dir: Path,
        log=print) -> dict[str, Any]:
    """The pilot's record (reused when current), written to run_dir/pilot.json."""
    rl, shared = settings.rlvr, settings.shared
    fingerprint = weights_fingerprint(model)
    wanted = key(settings, model, fingerprint)
    path = run_dir / "pilot.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("version") in contract.PILOT.readable and old.get("key") == wanted:
            log(f"pilot: reusing {path} (same starting model and settings)")
            return old
        log(f"pilot: {path} is of another starting model or other settings; running it again")
    rows = choose_rows(atomic.read_jsonl(data_dir / "rl_train.jsonl"), rl["pilot_prompts"], shared["seed"])
    rules = generation.Contract.from_shared(shared)
    engine_name = engines.choose(settings.eval["engine"])  # the evaluation's engine: vLLM on a GPU box
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or model)
    generation.check_tokenizer(tokenizer, rules, tokenizer_path or model)
    template = prompts.template_text(shared["chat_template"])  # grpo_fast renders --chat_template_name
    ids = [generation.prompt_ids(tokenizer, template, row["messages"], rules) for row in rows]
    decoding = engines.sampled(rl["samples_per_prompt"], rl["temperature"], 1.0, shared["max_response_length"],
                               shared["seed"], rules.stop_strings)
    log(f"pilot: {len(rows)} training prompts x {decoding.n} samples at temperature {decoding.temperature} from "
        f"{model} ({engine_name})")
    started = time.perf_counter()
    engine = engines.make(engine_name, model, settings.eval["batch_size"], shared["seed"], decoding.max_new_tokens)
    groups: dict[int, list[engines.Completion]] = {}
    engine.generate(ids, decoding, (), lambda batch: groups.update(batch))
    ordered = [groups[i] for i in range(len(rows))]
    figures = summarize(ordered, [str(row["ground_truth"]) for row in rows])
    threshold = rl["pilot_min_informative_groups"]
    record = {
        "format": contract.PILOT.id, "version": contract.PILOT.version, "key": wanted, **figures,
        "threshold": {"min_informative_groups": threshold}, "passed": figures["informative_groups"] >= threshold,
        "engine": engine.name, "device": engine.device, "dtype": engine.dtype,
        "decoding": decoding.as_dict(), "contract": rules.as_dict(),
        "first_prompt_token_ids": ids[0] if ids else [],
        "examples": [{"id": row["id"], "gold": str(row["ground_truth"]), "response": group[0].text,
                      "truncated": group[0].truncated} for row, group in list(zip(rows, ordered))[:EXAMPLES]],
        "wall_seconds": time.perf_counter() - started,
    }
    atomic.write_json(path, record)
    return record


def describe(record: dict[str, Any]) -> str:
    return (f"pilot: informative groups {record['informative_groups']:.0%} (threshold "
            f"{record['threshold']['min_informative_groups']:.0%}), mean reward {record['mean_reward']:.3f}, "
            f"stop rate {record['stop_rate']:.0%}, truncated {record['truncation_rate']:.0%}, mean length "
            f"{record['mean_response_tokens']:.0f} tokens, all-correct groups {record['groups_all_correct']:.0%}, "
            f"all-wrong groups {record['groups_all_wrong']:.0%}")


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sft_vs_rlvr.launch.pilot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, help="the RL stage's run folder (pilot.json goes there)")
    parser.add_argument("--data-dir", required=True, help="the experiment's data folder (rl_train.jsonl)")
    parser.add_argument("--model", required=True, help="the model RL starts from (folder or Hub id)")
    parser.add_argument("--tokenizer", help="the tokenizer the RL run uses (default: the model's)")
    parser.add_argument("--profile", default=os.environ.get("PROFILE", "llama8b"))
    args = parser.parse_args(argv)
    settings = settings_mod.load(args.profile)
    log = lambda message: print(message, file=sys.stderr)  # noqa: E731  stdout carries only the summary
    record = run(settings, Path(args.run_dir), args.model, args.tokenizer, Path(args.data_dir), log=log)
    print(describe(record))
    if record["passed"]:
        return 0
    message = (f"the starting model gives GRPO too little signal: {record['informative_groups']:.0%} of groups have "
               f"any reward variance, below pilot_min_informative_groups = "
               f"{record['threshold']['min_informative_groups']} (stop rate {record['stop_rate']:.0%}, mean reward "
               f"{record['mean_reward']:.3f}; {Path(args.run_dir) / 'pilot.json'} has examples); check the stop "
               "strings and the template, or FORCE=1 to launch anyway")
    if os.environ.get("FORCE") == "1":
        print(f"warning (FORCE=1, launching anyway): {message}", file=sys.stderr)
        return 0
    raise UserError(message)


if __name__ == "__main__":
    sys.exit(main())

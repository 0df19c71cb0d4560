"""The analysis stage on full-size inputs: time and peak memory of `python analyze_results.py`.

Full size is the llama8b experiment: 4 arms (base, sft, rlvr, sft_rlvr) on all 1,319 test problems with
16 sampled completions per problem besides the greedy one, 10 intermediate checkpoints per trained arm
(greedy), the stage manifests, the prepared data and one W&B run per trained arm of 10,000 history rows,
written offline by the real wandb package with open-instruct's keys (finetune.py for SFT, grpo_fast.py
for GRPO). Every file follows docs/FORMATS.md; the results files are computed by the evaluator's own
summary code (evaluation.summarize), so they are exactly what it would write for those samples.
Responses are GSM8K-like chain-of-thought text graded by the real graders: some wrong, some truncated,
some without an answer line. Generated with numpy default_rng(42): a rerun writes the same JSON files
(the W&B run files carry W&B's own wall-clock timestamps).

The inputs are generated once and cached (a temporary folder renamed into place, so a killed run never
leaves half of them); generation is not part of the bound. Then the analysis runs twice in a subprocess,
pinned to 2 cores where the machine has more, with --out in a temporary folder so the inputs stay as
they are. Bounds (issue): at most 20 s wall time and 2 GB peak resident memory per run, on 2 cores.
Prints the figures, one PASS/FAIL line per bound, and exits 1 when a bound fails (2 when it crashes).

    python benchmarks/report_full_size.py [--inputs DIR] [--regenerate] [--runs 2] [--profile]

--inputs defaults to ${SFT_VS_RLVR_CACHE:-~/.cache/sft-vs-rlvr}/bench-report-v1. --profile also runs
the analysis once under cProfile and prints the 15 entries with the most cumulative time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # the package, also where it is not installed in the environment

from sft_vs_rlvr import atomic, cache, contract, data_prep, prompts
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.evaluate import driver as evaluation
from sft_vs_rlvr.evaluate import engines as eval_engines
from sft_vs_rlvr.evaluate import grading
from sft_vs_rlvr.launch import layouts
from sft_vs_rlvr.report import wandb_runs  # noqa: E402

INPUTS_VERSION = 2  # bump when what is generated changes: cached inputs of another version are regenerated
# v2: grpo_fast's filter counts, in-loop eval and time/* keys, _timestamp on every row, pilot and compute records
STAMP = "bench-inputs.json"
EXPERIMENT_ID = "llama8b-seed42"
ARMS, MODELS = contract.ARMS, contract.MODELS
N_CHECKPOINTS = 10
HISTORY_ROWS = 10_000
GPUS = 4
GPU_NAME = "NVIDIA H100 80GB HBM3, 81559 MiB"
EOS = "<|end_of_text|>"
FAKE_ROOT = "/data/sft-vs-rlvr/runs"  # where the model folders "were": results files name a path, never this machine's
WALL_BOUND_S, RSS_BOUND_MB, CORES = 20.0, 2048.0, 2
# Greedy accuracy each arm is calibrated to (Llama-3.1-8B on GSM8K, zero-shot, in the tulu template), and the
# logit offset of sampling at temperature 0.6 against greedy.
TARGET_ACCURACY = {"base": 0.42, "sft": 0.61, "rlvr": 0.74, "sft_rlvr": 0.77}
SAMPLED_OFFSET = {"base": -0.45, "sft": -0.3, "rlvr": -0.1, "sft_rlvr": -0.1}
# Per-response rates: truncated at the token budget, no '####' line, no number at all, a format the graders
# disagree on.
RATES = {
    "base": {"truncated": 0.07, "no_line": 0.12, "no_number": 0.02, "odd_format": 0.03},
    "sft": {"truncated": 0.02, "no_line": 0.02, "no_number": 0.004, "odd_format": 0.02},
    "rlvr": {"truncated": 0.01, "no_line": 0.005, "no_number": 0.002, "odd_format": 0.01},
    "sft_rlvr": {"truncated": 0.01, "no_line": 0.004, "no_number": 0.002, "odd_format": 0.01},
}

NAMES = ["Janet", "Tobias", "Marissa", "Carlos", "Aisha", "Ken", "Priya", "Liam", "Sofia", "Mark", "Elena", "Raj",
         "Greta", "Hugo", "Nadia", "Owen", "Mei", "Darius", "Lucia", "Tom"]
ITEMS = [("cupcakes", "cupcake"), ("eggs", "egg"), ("notebooks", "notebook"), ("apples", "apple"),
         ("bracelets", "bracelet"), ("tickets", "ticket"), ("candles", "candle"), ("seashells", "seashell"),
         ("muffins", "muffin"), ("stickers", "sticker"), ("jars of jam", "jar of jam"), ("comic books", "comic book")]
INTROS = {
    "base": ["", "Let's solve this problem.\n", "To solve this, we follow the steps.\n"],
    "sft": ["", "", "We work through it one step at a time.\n"],
    "rlvr": ["Let's break this down step by step.\n\n", "Let's think step by step.\n\n",
             "We need to track the number of {item} carefully.\n\n"],
}
INTROS["sft_rlvr"] = INTROS["rlvr"]


# ----------------------------------------------------------------------------------------------- problems


def make_problem(rng: np.random.Generator, index: int) -> dict[str, Any]:
    """A GSM8K-like word problem: 2 to 4 operations on one quantity, a gold solution with <<a*b=c>> steps."""
    name, (item, one) = NAMES[rng.integers(len(NAMES))], ITEMS[rng.integers(len(ITEMS))]
    value = int(rng.integers(4, 60))
    question = [f"{name} has {value} {item}."]
    steps = []  # (expression, operator, operand, result, what it is)
    for _ in range(int(rng.integers(2, 5))):
        kind = ["add", "sub", "mul", "div"][rng.integers(4)]
        divisors = [d for d in range(2, 10) if value % d == 0]
        if kind == "div" and not divisors:
            kind = "mul"
        if kind == "sub" and value < 3:
            kind = "add"
        if kind == "add":
            b = int(rng.integers(2, 40))
            question.append(f"{name} then gets {b} more {item} from a friend.")
            steps.append((value, "+", b, value + b, f"after getting {b} more"))
            value += b
        elif kind == "sub":
            b = int(rng.integers(1, value))
            question.append(f"{name} gives away {b} {item}.")
            steps.append((value, "-", b, value - b, f"after giving {b} away"))
            value -= b
        elif kind == "mul":
            b = int(rng.integers(2, 7))
            question.append(f"Then the number of {item} {name} has grows to {b} times as many.")
            steps.append((value, "*", b, value * b, f"after it grows {b} times"))
            value *= b
        else:
            b = divisors[rng.integers(len(divisors))]
            question.append(f"{name} splits the {item} equally into {b} boxes and keeps one box.")
            steps.append((value, "/", b, value // b, f"in one of {b} boxes"))
            value //= b
    if rng.random() < 0.4:
        price = int(rng.integers(2, 13))
        question.append(f"{name} sells each {one} for ${price}. How much money does {name} make?")
        steps.append((value, "*", price, value * price, f"dollars from selling them at ${price} each"))
        value *= price
        unit = "dollars"
    else:
        question.append(f"How many {item} does {name} have at the end?")
        unit = item
    solution = "\n".join(f"{name} has {a}{op}{b} = <<{a}{op}{b}={c}>>{c} {unit if i == len(steps) - 1 else item} {what}."
                         for i, (a, op, b, c, what) in enumerate(steps)) + f"\n#### {value}"
    return {"id": f"gsm8k-test-{index:05d}", "name": name, "item": item, "unit": unit, "steps": steps,
            "answer": value, "question": " ".join(question), "solution": solution}


def wrong_answers(problem: dict[str, Any]) -> list[int]:
    """Plausible wrong finals: the last step skipped, an arithmetic slip, the wrong operation."""
    a, op, b, c, _ = problem["steps"][-1]
    other = {"+": a - b, "-": a + b, "*": a + b, "/": a * b}[op]
    slips = [c + 10, c - 1, c + 1, int(str(c)[::-1]) if c > 10 else c + 2]
    out = []
    for value in [a, slips[len(problem["question"]) % 4], other, c * 2]:
        if value != c and value >= 0 and value not in out:
            out.append(value)
    return out or [c + 1]


def response_text(problem: dict[str, Any], style: str, final: int | None, flags: dict[str, bool],
                  rng: np.random.Generator) -> str:
    """A chain-of-thought answer in the arm's style whose last step gives `final` (None: stops before)."""
    name, item, unit, steps = problem["name"], problem["item"], problem["unit"], problem["steps"]
    if flags["no_number"]:
        return (f"To find the answer we need to know how many {item} {name} has at each point of the story. "
                f"The problem describes several changes, and each one has to be applied in order. "
                f"Since some information seems to be missing, we cannot be sure of the final amount.")
    intro = INTROS[style][rng.integers(len(INTROS[style]))].format(item=item)
    lines = [intro + f"{name} starts with {steps[0][0]} {item}."]
    if final is not None and len(steps) > 1 and final == steps[-1][0]:
        final = None  # the wrong answer that forgets the last step
    shown_steps = steps if final is not None or len(steps) == 1 else steps[:-1]
    for i, (a, op, b, c, what) in enumerate(shown_steps):
        last = i == len(steps) - 1
        if last and final is not None and final != c:
            c = final
        word = {"+": "adds", "-": "subtracts", "*": "multiplies by", "/": "divides by"}[op]
        u = unit if last else item
        if style in ("rlvr", "sft_rlvr"):
            lines.append(f"{i + 1}. Next, {name} {word} {b}. So we compute {a} {op} {b} = <<{a}{op}{b}={c}>>{c}. "
                         f"That means {name} has {c} {u} {what}.")
        elif style == "sft":
            lines.append(f"{name} has {a}{op}{b} = <<{a}{op}{b}={c}>>{c} {u} {what}.")
        else:
            lines.append(f"Then {a} {op} {b} = {c}, so there are {c} {u} {what}.")
    answer = final if final is not None else shown_steps[-1][3]
    if style in ("rlvr", "sft_rlvr"):
        lines.append(f"\nTherefore, the final answer is {answer} {unit}.")
    elif style == "sft":
        lines.append(f"So {name} ends up with {answer} {unit}.")
    elif style == "base" and rng.random() < 0.5:
        lines.append(f"So the answer is {answer}.")
    if not flags["no_line"]:
        shown = f"{answer}.00" if flags["odd_format"] and rng.random() < 0.5 else str(answer)
        lines.append(f"#### {shown}")
        if flags["odd_format"] and shown == str(answer):
            lines.append(f"(I checked the {len(steps)} steps again.)")
    text = "\n".join(line for line in lines if line)
    if flags["truncated"]:  # ran to the token budget: a base model writes the next exercise, others loop
        filler = (f"\n\nQuestion: {NAMES[(len(text) + 3) % len(NAMES)]} has {len(text) % 50 + 5} {item}. "
                  f"How many {item} are left after giving some away?\nAnswer: Let's see." if style == "base"
                  else f"\nWait, let me double-check: {name} has {answer} {unit}, and we recompute the steps.")
        while len(text) < 2150:
            text += filler
        text = text[:2100]
    return text


def tokens_of(text: str, truncated: bool, max_tokens: int) -> int:
    return max_tokens if truncated else min(max_tokens - 1, max(1, round(len(text) / 4.2))) + 1  # + EOS


def graded(problem: dict[str, Any], text: str, truncated: bool, max_tokens: int) -> dict[str, Any]:
    """The per-completion keys of a samples line (FORMATS.md), with the real graders' verdicts."""
    gold = str(problem["answer"])
    robust, verifier = grading.robust_grade(text, gold), grading.verifier_grade(text, gold)
    return {"response": text, "extracted": robust.extracted, "correct": robust.correct,
            "verifier_extracted": verifier.extracted, "verifier_correct": verifier.correct,
            "truncated": truncated, "response_tokens": tokens_of(text, truncated, max_tokens)}


def completion(problem: dict[str, Any], style: str, p_correct: float, rates: dict[str, float],
               traps: list[int], trap_weights: np.ndarray, rng: np.random.Generator, max_tokens: int) -> dict[str, Any]:
    flags = {key: bool(rng.random() < rate) for key, rate in rates.items()}
    if rng.random() < p_correct:
        final = problem["answer"]
    elif rng.random() < 0.1 and len(problem["steps"]) > 1:
        final = None  # stopped one step early
    else:
        final = traps[rng.choice(len(traps), p=trap_weights[: len(traps)] / trap_weights[: len(traps)].sum())]
    return graded(problem, response_text(problem, style, final, flags, rng), flags["truncated"], max_tokens)


def calibrate(difficulty: np.ndarray, target: float) -> float:
    """The skill s with mean(sigmoid(s - difficulty)) = target (bisection)."""
    lo, hi = -10.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.mean(1 / (1 + np.exp(difficulty - mid))) < target else (lo, mid)
    return (lo + hi) / 2


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


# ----------------------------------------------------------------------------------------------- files


def fake_sha(*parts: Any) -> str:
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:16]


def write_data(exp: Path, settings: settings_mod.Settings, problems: list[dict[str, Any]],
               rng: np.random.Generator) -> dict[str, Any]:
    """data/: the three prepared files in their formats (train rows generated like the test rows) and the manifest."""
    shared, instruction = settings.shared, settings.shared["instruction"]
    train = [make_problem(rng, i) for i in range(shared["train_size"])]
    for row in train:
        row["id"] = row["id"].replace("test", "train")

    def user(p):
        return {"role": "user", "content": prompts.user_content(p["question"], instruction)}

    rows = {
        "sft_train.jsonl": [{"id": p["id"], "messages": [user(p), {"role": "assistant", "content": p["solution"]}]}
                            for p in train],
        "rl_train.jsonl": [{"id": p["id"], "messages": [user(p)], "ground_truth": str(p["answer"]), "dataset": "gsm8k"}
                           for p in train],
        "test.jsonl": [{"id": p["id"], "messages": [user(p)], "ground_truth": str(p["answer"]), "dataset": "gsm8k",
                        "solution": p["solution"]} for p in problems],
    }
    files = {}
    for name in data_prep.FILES:
        atomic.write_jsonl(exp / "data" / name, rows[name])
        files[name] = {"rows": len(rows[name]), "sha256": data_prep._sha256_rows(rows[name])}
    manifest = {"format": contract.DATA.id, "version": contract.DATA.version,
                "source": data_prep._source_description(shared), "files": files,
                "fingerprint": hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]}
    atomic.write_json(exp / "data" / "manifest.json", manifest)
    return manifest


def checkpoint_steps(settings: settings_mod.Settings) -> dict[str, tuple[list[int], int, str, str]]:
    """Per arm: (N_CHECKPOINTS steps, examples per step, kind, folder pattern) from the 4-GPU layout."""
    layout = layouts.resolve(settings, gpus_per_node=GPUS, nodes=1)
    sft_every = max(1, layout.sft_steps // N_CHECKPOINTS)
    rl_every = max(1, layout.rlvr_steps // N_CHECKPOINTS)
    return {
        "sft": ([sft_every * k for k in range(1, N_CHECKPOINTS + 1)], settings.sft["effective_batch_size"],
                "training_state", "output/sft/step_{step}"),
        "rlvr": ([rl_every * k for k in range(1, N_CHECKPOINTS + 1)], settings.rlvr["prompts_per_step"],
                 "hf_model", "output/rlvr__42__1795600000_checkpoints/step_{step}"),
        "sft_rlvr": ([rl_every * k for k in range(1, N_CHECKPOINTS + 1)], settings.rlvr["prompts_per_step"],
                     "hf_model", "output/sft_rlvr__42__1795625000_checkpoints/step_{step}"),
    }


LLAMA_8B_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
    "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "bos_token_id": 128000, "eos_token_id": 128001,
    "hidden_act": "silu", "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                           "original_max_position_embeddings": 8192, "rope_type": "llama3"}}
STAGE_TIMES = {"sft": ("2026-11-20T08:02:11Z", "2026-11-20T12:47:40Z"),
               "rlvr": ("2026-11-20T13:05:02Z", "2026-11-20T18:31:55Z"),
               "sft_rlvr": ("2026-11-20T19:00:40Z", "2026-11-21T00:22:13Z")}
FINAL_MODEL = {"sft": "output/sft", "rlvr": "output/rlvr__42__1795600000",
               "sft_rlvr": "output/sft_rlvr__42__1795625000"}
PACKAGES = {"torch": "2.6.0", "transformers": "4.51.3", "accelerate": "1.12.0", "datasets": "3.6.0",
            "tokenizers": "0.21.1", "wandb": "0.19.11", "deepspeed": "0.16.8", "vllm": "0.9.1", "ray": "2.46.0",
            "open-instruct": "0.3.0", "sft-vs-rlvr": "0.1.0"}


def stage_command(stage: str, settings: settings_mod.Settings, exp: str) -> list[str]:
    oi = "/opt/open-instruct"
    if stage == "sft":
        return [f"{oi}/.venv/bin/accelerate", "launch", "--mixed_precision", "bf16", "--num_processes", str(GPUS),
                "--use_deepspeed", "--deepspeed_config_file", f"{oi}/configs/ds_configs/stage2_no_offloading_accelerate.conf",
                f"{oi}/open_instruct/finetune.py", "--exp_name", "sft", "--output_dir", f"{exp}/sft/output",
                "--model_name_or_path", settings.shared["base_model"], "--tokenizer_name_or_path", f"{exp}/data/tokenizer",
                "--chat_template_name", "tulu", "--dataset_mixer_list", f"{exp}/data/sft_train.jsonl", "1.0",
                "--max_seq_length", "1024", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
                "--packing", "--learning_rate", str(settings.sft["learning_rate"]), "--lr_scheduler_type", "linear",
                "--warmup_ratio", str(settings.sft["warmup_ratio"]), "--num_train_epochs", str(settings.sft["epochs"]),
                "--seed", "42", "--checkpointing_steps", "93", "--logging_steps", "1", "--with_tracking",
                "--report_to", "wandb", "--wandb_project_name", "sft-vs-rlvr"]
    init = f"{exp}/sft/output/sft" if stage == "sft_rlvr" else settings.shared["base_model"]
    return [f"{oi}/.venv/bin/python", f"{oi}/open_instruct/grpo_fast.py", "--exp_name", stage,
            "--output_dir", f"{exp}/{stage}/output", "--model_name_or_path", init,
            "--dataset_mixer_list", f"{exp}/data/rl_train.jsonl", "1.0", "--learning_rate",
            str(settings.rlvr["learning_rate"]), "--num_unique_prompts_rollout", str(settings.rlvr["prompts_per_step"]),
            "--num_samples_per_prompt_rollout", str(settings.rlvr["samples_per_prompt"]), "--beta",
            str(settings.rlvr["beta"]), "--temperature", str(settings.rlvr["temperature"]), "--total_episodes",
            "59784", "--num_learners_per_node", "2", "--vllm_num_engines", "2", "--save_freq", "11",
            "--checkpoint_state_dir", f"{exp}/{stage}/state", "--with_tracking", "--seed", "42"]


def write_manifest(exp: Path, stage: str, settings: settings_mod.Settings, data_manifest: dict[str, Any],
                   checkpoints: list[dict[str, Any]], run_id: str) -> dict[str, Any]:
    command = stage_command(stage, settings, f"{FAKE_ROOT}/{EXPERIMENT_ID}")
    started, ended = STAGE_TIMES[stage]
    manifest = {
        "format": contract.MANIFEST.id, "version": contract.MANIFEST.version, "experiment_id": EXPERIMENT_ID,
        "stage": stage, "profile": settings.profile, "settings": settings.as_dict(),
        "settings_fingerprints": {part: settings.fingerprint(part) for part in ("shared", "sft", "rlvr", "eval")},
        "command": command, "command_line": shlex.join(command),
        "repo_commit": "4f86901c0ffee0123456789abcdef0123456789a", "repo_dirty": False,
        "open_instruct_commit": contract.OPEN_INSTRUCT_COMMIT, "packages": PACKAGES, "data": data_manifest,
        "host": {"python": "3.11.12", "platform": "Linux-5.15.0-139-generic-x86_64-with-glibc2.35",
                 "gpus": [GPU_NAME] * GPUS, "num_nodes": 1},
        "started_at": started, "ended_at": ended, "status": "completed", "exit_status": 0,
        "compute": {"device": "cuda", "gpus": GPUS, "source": "NUM_GPUS"}, "command_file": "command.sh",
        "pilot": None if stage == "sft" else PILOT[stage],
        "wandb": {"mode": "offline", "why": "no W&B login found (wandb login, or WANDB_API_KEY)",
                  "project": settings.shared["wandb_project"], "group": EXPERIMENT_ID, "run_id": run_id,
                  "run_name": f"{EXPERIMENT_ID}-{stage}", "dir": "wandb", "url": None,
                  "sync_command": f"wandb sync {FAKE_ROOT}/{EXPERIMENT_ID}/{stage}/wandb/offline-run-*-{run_id}*"},
        "final_model": FINAL_MODEL[stage], "checkpoints": checkpoints, "log": "train.log",
    }
    atomic.write_json(exp / stage / "manifest.json", manifest)
    # The final model folder's config (Llama-3.1-8B's shapes); no weights: the analysis never loads them.
    atomic.write_json(exp / stage / FINAL_MODEL[stage] / "config.json", LLAMA_8B_CONFIG)
    atomic.write_text(exp / stage / "train.log", f"[{started}] {shlex.join(command)}\n...\n[{ended}] exit 0\n")
    return manifest


# ----------------------------------------------------------------------------------------------- W&B


PILOT = {arm: {"passed": True, "informative_groups": share, "mean_reward": reward, "stop_rate": 0.94,
               "truncation_rate": 0.06, "mean_response_tokens": 188.0, "groups_all_correct": correct,
               "groups_all_wrong": wrong, "prompts": 256, "samples": 2048, "threshold": 0.2, "file": "pilot.json"}
         for arm, share, reward, correct, wrong in (("rlvr", 0.47, 0.38, 0.12, 0.41), ("sft_rlvr", 0.44, 0.6, 0.4, 0.16))}
STARTUP_S = {"sft": 540.0, "rlvr": 960.0, "sft_rlvr": 900.0}  # from the launch to the first step
TAIL_S = {"sft": 240.0, "rlvr": 180.0, "sft_rlvr": 180.0}      # after the last row: final save, shut-down
SAVE_S = {"sft": 105.0, "rlvr": 95.0, "sft_rlvr": 95.0}       # a DeepSpeed state (SFT) or a GRPO state, after logging
SNAPSHOT_S = 18.0                                              # grpo_fast's HF snapshot, inside the step (time/saving)


def _epoch(text: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def timestamps(stage: str, n: int, saves: set[int]) -> np.ndarray:
    """_timestamp of each of n steps: the stage's start + start-up, then even steps, a save after each step in
    `saves`, ending TAIL_S before the stage's end."""
    start, end = (_epoch(t) for t in STAGE_TIMES[stage])
    per_step = (end - start - STARTUP_S[stage] - TAIL_S[stage] - SAVE_S[stage] * len(saves)) / n
    steps = np.arange(1, n + 1)
    extra = np.array([SAVE_S[stage] * sum(1 for s in saves if s < k) for k in steps])  # saves before step k
    return start + STARTUP_S[stage] + per_step * steps + extra


def sft_rows(rng: np.random.Generator, n: int, lr: float, warmup_ratio: float,
             stamps: np.ndarray) -> list[tuple[int, dict[str, Any]]]:
    """finetune.py's logged keys, one row per optimizer step (accelerator.log(metrics, step=completed_steps))."""
    steps = np.arange(1, n + 1)
    warmup = max(1, int(warmup_ratio * n))
    lrs = np.where(steps <= warmup, lr * steps / warmup, lr * (n - steps) / max(1, n - warmup))
    loss = 0.28 + 0.75 * np.exp(-steps / (0.03 * n)) + 0.05 * np.exp(-steps / (0.4 * n))
    loss = loss - 0.04 * (steps > n / 2) + rng.normal(0, 0.035, n) * (0.5 + loss)  # second epoch drop, noise
    tokens = np.cumsum(rng.integers(2900, 3700, n))
    tps = rng.normal(6200, 350, n)
    return [(int(s), {"learning_rate": float(rate), "train_loss": float(max(0.05, x)), "total_tokens": int(t),
                      "per_device_tps": float(p), "_timestamp": float(ts)})
            for s, rate, x, t, p, ts in zip(steps, lrs, loss, tokens, tps, stamps)]


def grpo_rows(rng: np.random.Generator, n: int, start_reward: float, end_reward: float, lr: float,
              prompts: int, samples: int, train_size: int, stamps: np.ndarray, snapshots: set[int],
              learners: int = 2, eval_every: int = 25) -> list[tuple[None, dict[str, Any]]]:
    """grpo_fast.py (open-instruct v0.3.0) keys, one row per training step; training_step is the step metric.

    Simulated group by group (prompts x samples, reward 1 or 0, prompts of varied difficulty) so that, as in
    grpo_fast, every reward key covers only the groups the zero-variance filter keeps while the filter counts
    describe the dropped ones; beta 0 without a reference model: the kl keys are 0.0. The in-loop evaluation
    every eval_every steps; time/* keys and val/num_total_tokens consistent with the row timestamps."""
    t = np.arange(1, n + 1) / n
    solve = start_reward + (end_reward - start_reward) * (1 - np.exp(-5 * t)) / (1 - math.exp(-5))
    length = 190 - 45 * (1 - np.exp(-4 * t)) + rng.normal(0, 6, n)
    entropy = 0.55 - 0.25 * t + rng.normal(0, 0.02, n)
    step_seconds = float(np.median(np.diff(stamps)))  # a step without a save after it
    training_start = stamps[0] - step_seconds
    rows, tokens = [], 0.0
    for i in range(n):
        episode = (i + 1) * prompts * samples
        p = float(np.clip(solve[i], 0.02, 0.98))
        correct = rng.binomial(samples, rng.beta(p, 1 - p, size=prompts))
        kept = correct[(correct > 0) & (correct < samples)]
        rate = float(kept.mean() / samples) if len(kept) else 0.0
        saving = SNAPSHOT_S if i + 1 in snapshots else 0.0
        row = {
            "training_step": i + 1, "episode": episode, "epoch": episode / samples / train_size,
            "_timestamp": float(stamps[i]),
            "scores": rate, "objective/verifiable_reward": rate, "objective/verifiable_correct_rate": rate,
            "batch/percent_solved_mean": rate, "batch/total_prompts": int(len(kept)),
            "val/total_reward_groups": int(len(kept)), "batch/filtered_prompts": int(prompts - len(kept)),
            "batch/filtered_prompts_zero": int((correct == 0).sum()),
            "batch/filtered_prompts_solved": int((correct == samples).sum()), "batch/filtered_prompts_nonzero": 0,
            "objective/kl0_avg": 0.0, "objective/kl1_avg": 0.0, "objective/kl2_avg": 0.0, "objective/kl3_avg": 0.0,
            "loss/policy_avg": float(rng.normal(0, 0.02)), "loss/kl_avg": 0.0,
            "policy/entropy_avg": float(entropy[i]), "val/sequence_lengths": float(length[i]),
            "val/stop_rate": float(min(1.0, 0.93 + 0.06 * t[i] + rng.normal(0, 0.01))),
            "lr": float(lr), "optim/grad_norm": float(abs(rng.normal(0.35, 0.08))),
            "val/num_total_tokens": tokens * learners,
            "time/total": 0.9 * step_seconds, "time/saving": saving,  # the state save after logging is not in it
            "time/training": 0.8 * step_seconds, "time/trainer_waiting_for_data": 0.3 * step_seconds,
        }
        if i:
            row["learner_tokens_per_second_overall"] = tokens * learners / (stamps[i] - training_start)
        if i == 0 or (i + 1) % eval_every == 0:
            row.update({"eval/pass_at_1": float(np.clip(solve[i] + 0.03 + rng.normal(0, 0.02), 0, 1)),
                        "eval/stop_rate": float(min(1.0, 0.95 + 0.04 * t[i])), "eval/sequence_lengths": float(length[i])})
        rows.append((None, row))
        tokens += samples * len(kept) * (90.0 + length[i])
    return rows


def write_wandb_run(stage_dir: Path, run_id: str, name: str, rows: list[tuple[int | None, dict[str, Any]]],
                    config: dict[str, Any]) -> float:
    """Log rows with the real wandb package offline, WANDB_DIR=<stage> (-> <stage>/wandb/offline-run-*); seconds."""
    import wandb

    started = time.perf_counter()
    with wandb_runs.offline_environment(stage_dir):
        run = wandb.init(project="sft-vs-rlvr", group=EXPERIMENT_ID, id=run_id, name=name, config=config,
                         dir=str(stage_dir))
        for step, row in rows:
            run.log(row, step=step) if step is not None else run.log(row)
        run.finish()
        wandb.teardown()
    return time.perf_counter() - started


# ----------------------------------------------------------------------------------------------- generation


def generate(exp: Path, settings: settings_mod.Settings, history_rows: int, log=print) -> dict[str, Any]:
    """Write the whole experiment folder under exp; returns the stamp (what was written, how long it took)."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    master = np.random.default_rng(42)
    rng_data, rng_eval, rng_wandb = master.spawn(3)
    shared, max_tokens = settings.shared, settings.shared["max_response_length"]
    problems = [make_problem(rng_data, i) for i in range(shared["test_size"])]
    data_manifest = write_data(exp, settings, problems, rng_data)
    atomic.write_json(exp / "experiment.json", {
        "format": contract.EXPERIMENT.id, "version": 1, "experiment_id": EXPERIMENT_ID, "profile": settings.profile,
        "shared": shared, "shared_fingerprint": settings.fingerprint(), "created_at": "2026-11-20T07:55:03Z"})
    timings["data"] = time.perf_counter() - started

    # Evaluation outputs: per problem a difficulty, per model a skill; verdicts correlate across models.
    t0 = time.perf_counter()
    difficulty = rng_eval.normal(0, 1.6, len(problems))
    skills = {name: calibrate(difficulty, acc) for name, acc in TARGET_ACCURACY.items()}
    traps = [wrong_answers(p) for p in problems]
    template = prompts.template_text(shared["chat_template"])
    prompt_texts = [prompts.render(template, [{"role": "user", "content": prompts.user_content(p["question"],
                                                                                               shared["instruction"])}],
                                   EOS, True) for p in problems]
    greedy, sampled = eval_engines.greedy(max_tokens, shared["seed"]), eval_engines.sampled(
        settings.eval["samples"], settings.eval["temperature"], settings.eval["top_p"], max_tokens, shared["seed"])
    steps_by_arm = checkpoint_steps(settings)
    index, checkpoints_by_arm = [], {arm: [] for arm in ARMS}
    plan = [(name, None, None) for name in MODELS]
    for arm in ARMS:
        start = "sft" if arm == "sft_rlvr" else "base"
        steps, per_step, kind, pattern = steps_by_arm[arm]
        for k, step in enumerate(steps, 1):
            frac = (1 - math.exp(-3 * k / (N_CHECKPOINTS + 1))) / (1 - math.exp(-3))
            skill = skills[start] + (skills[arm] - skills[start]) * frac
            plan.append((f"{arm}_step{step}", arm, {"arm": arm, "step": step, "examples_seen": step * per_step,
                                                    "kind": kind, "path": pattern.format(step=step), "skill": skill}))
    counts = {"results_files": 0, "samples_files": 0, "sample_lines": 0, "completions": 0}
    for name, arm, ckpt in plan:
        style = arm or name
        skill = ckpt["skill"] if ckpt else skills[name]
        rates = RATES[style]
        # RL sharpens: its wrong answers concentrate on one trap; the base model spreads them.
        trap_weights = np.array([0.7, 0.15, 0.1, 0.05] if style in ("rlvr", "sft_rlvr") else [0.4, 0.25, 0.2, 0.15])
        p_greedy = sigmoid(skill - difficulty)
        p_sampled = sigmoid(skill + SAMPLED_OFFSET[style] - difficulty)
        n_samples = 0 if ckpt else settings.eval["samples"]
        samples = []
        for i, problem in enumerate(problems):
            record = {"id": problem["id"], "prompt": prompt_texts[i], "gold": str(problem["answer"]),
                      **completion(problem, style, p_greedy[i], rates, traps[i], trap_weights, rng_eval, max_tokens)}
            if n_samples:
                record["samples"] = [completion(problem, style, p_sampled[i], rates, traps[i], trap_weights, rng_eval,
                                                max_tokens) for _ in range(n_samples)]
            samples.append(record)
        if ckpt:
            spec = evaluation.ModelSpec(name, f"{FAKE_ROOT}/{EXPERIMENT_ID}/{arm}/{ckpt['path']}", arm, ckpt["step"],
                                        ckpt["examples_seen"], ckpt["kind"], f"{FAKE_ROOT}/{EXPERIMENT_ID}/{arm}/{FINAL_MODEL[arm]}")
            fingerprint = ("state:" if ckpt["kind"] == "training_state" else "") + fake_sha(name, "weights")
        elif name == "base":
            spec, fingerprint = evaluation.ModelSpec(name, shared["base_model"]), f"hub:{shared['base_model']}"
        else:
            spec = evaluation.ModelSpec(name, f"{FAKE_ROOT}/{EXPERIMENT_ID}/{name}/{FINAL_MODEL[name]}", arm=name)
            fingerprint = fake_sha(name, "weights")
        chosen = [greedy] + ([sampled] if n_samples else [])
        timing = {}
        for decoding in chosen:
            new_tokens = sum(s["response_tokens"] for s in samples) if decoding.kind == "greedy" else sum(
                c["response_tokens"] for s in samples for c in s["samples"])
            tps = 3400.0 if decoding.kind == "greedy" else 9100.0
            timing[decoding.kind] = {"wall_seconds": round(new_tokens / tps, 2), "new_tokens": new_tokens,
                                     "tokens_per_second": new_tokens / round(new_tokens / tps, 2)}
        facts = {"engine": "vllm", "device": "cuda", "dtype": "bfloat16", "template_source":
                 "shared" if name == "base" else "tokenizer", "fingerprint": fingerprint, "timing": timing,
                 "decodings": {d.kind: d.as_dict() for d in chosen},
                 # what the evaluator records of how prompts were built and where the model ran (driver.py)
                 "prompt": {"template_source": "shared" if name == "base" else "tokenizer",
                            "stop_strings": list(shared["stop_strings"]), "add_bos": shared["add_bos"],
                            "first_prompt_token_ids": []},
                 "placement": {"processes": 1, "tensor_parallel": GPUS}}
        results = evaluation.summarize(spec, samples, settings, Path(EXPERIMENT_ID), facts)
        results["created_at"] = f"2026-11-21T0{2 + len(index) // 60}:{len(index) % 60:02d}:00Z"
        atomic.write_jsonl(exp / "eval" / results["samples_file"], samples)
        atomic.write_json(exp / "eval" / f"{name}_results.json", results)
        index.append({"name": name, "status": "evaluated", "results": f"{name}_results.json"})
        if ckpt:
            checkpoints_by_arm[arm].append({"step": ckpt["step"], "path": ckpt["path"],
                                            "examples_seen": ckpt["examples_seen"], "kind": ckpt["kind"]})
        counts["results_files"] += 1
        counts["samples_files"] += 1
        counts["sample_lines"] += len(samples)
        counts["completions"] += len(samples) * (1 + n_samples)
        log(f"  eval/{name}: accuracy {results['accuracy']:.3f}"
            + (f", pass@16 {results['sampled']['robust']['pass@k']['16']:.3f}" if n_samples else ""))
    atomic.write_json(exp / "eval" / "index.json", {"format": contract.EVAL_INDEX.id, "version": 1, "engine": "vllm",
                                                     "models": index, "written_at": "2026-11-21T04:00:00Z"})
    timings["eval"] = time.perf_counter() - t0

    # Stage manifests and W&B runs.
    rng_sft, rng_rlvr, rng_hybrid = rng_wandb.spawn(3)
    saves = {arm: {c["step"] for c in checkpoints_by_arm[arm]} for arm in ARMS}
    stamps = {arm: timestamps(arm, history_rows, saves[arm]) for arm in ARMS}
    rl = settings.rlvr
    wandb_rows = {
        "sft": sft_rows(rng_sft, history_rows, settings.sft["learning_rate"], settings.sft["warmup_ratio"],
                        stamps["sft"]),
        "rlvr": grpo_rows(rng_rlvr, history_rows, 0.38, 0.78, rl["learning_rate"], rl["prompts_per_step"],
                          rl["samples_per_prompt"], shared["train_size"], stamps["rlvr"], saves["rlvr"]),
        "sft_rlvr": grpo_rows(rng_hybrid, history_rows, 0.6, 0.81, rl["learning_rate"], rl["prompts_per_step"],
                              rl["samples_per_prompt"], shared["train_size"], stamps["sft_rlvr"], saves["sft_rlvr"]),
    }
    for stage in ARMS:
        run_id = f"{stage}-{fake_sha(stage, 'run')[:8]}"
        write_manifest(exp, stage, settings, data_manifest, checkpoints_by_arm[stage], run_id)
        config = {"exp_name": stage, "seed": shared["seed"], "model_name_or_path": shared["base_model"],
                  **(settings.sft if stage == "sft" else settings.rlvr)}
        timings[f"wandb_{stage}"] = write_wandb_run(exp / stage, run_id, f"{EXPERIMENT_ID}-{stage}",
                                                    wandb_rows[stage], config)
        log(f"  {stage}/wandb: {history_rows} rows written by wandb in {timings[f'wandb_{stage}']:.1f} s")
    counts.update(manifests=len(ARMS), wandb_runs=len(ARMS), wandb_rows=history_rows * len(ARMS))
    timings["total"] = time.perf_counter() - started
    return {"inputs_version": INPUTS_VERSION, "experiment_id": EXPERIMENT_ID, "history_rows": history_rows,
            "settings_fingerprints": {part: settings.fingerprint(part) for part in ("shared", "sft", "rlvr", "eval")},
            "counts": counts, "generation_seconds": {k: round(v, 2) for k, v in timings.items()}}


def stale_reason(inputs: Path, settings: settings_mod.Settings, history_rows: int) -> str | None:
    stamp_path = inputs / STAMP
    if not stamp_path.is_file():
        return "no inputs yet" if not inputs.exists() else f"{inputs} has no {STAMP}"
    stamp = json.loads(stamp_path.read_text())
    if stamp.get("inputs_version") != INPUTS_VERSION:
        return f"inputs version {stamp.get('inputs_version')} (this script writes {INPUTS_VERSION})"
    if stamp.get("settings_fingerprints") != {p: settings.fingerprint(p) for p in ("shared", "sft", "rlvr", "eval")}:
        return "configs/ changed since they were generated"
    if stamp.get("history_rows") != history_rows:
        return f"they have {stamp.get('history_rows')} W&B rows per run, {history_rows} asked"
    return None


def ensure_inputs(inputs: Path, regenerate: bool, history_rows: int) -> dict[str, Any]:
    settings = settings_mod.load("llama8b")
    reason = "--regenerate" if regenerate else stale_reason(inputs, settings, history_rows)
    if reason is None:
        print(f"inputs: reusing {inputs}")
        return json.loads((inputs / STAMP).read_text())
    print(f"inputs: generating in {inputs} ({reason})")
    inputs.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{inputs.name}.tmp-", dir=inputs.parent))
    try:
        stamp = generate(tmp, settings, history_rows)
        atomic.write_json(tmp / STAMP, stamp)
        if inputs.exists():
            old = inputs.with_name(f".{inputs.name}.old-{os.getpid()}")
            inputs.rename(old)
            tmp.rename(inputs)
            shutil.rmtree(old)
        else:
            tmp.rename(inputs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return stamp


# ----------------------------------------------------------------------------------------------- timing


def pin_cores() -> list[int] | None:
    """The CPUs a child is pinned to: the first CORES of ours when we have more, else None (no pinning)."""
    try:
        mine = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None
    return mine[:CORES] if len(mine) > CORES else None


def time_analysis(inputs: Path, out: Path, cpus: list[int] | None, repo: Path) -> dict[str, Any]:
    """One `python analyze_results.py` in a child: wall seconds, peak RSS (MB), exit code, last output lines."""
    command = [sys.executable, str(repo / "analyze_results.py"), "--experiment-dir", str(inputs), "--out", str(out)]
    gnu_time = Path("/usr/bin/time")
    if gnu_time.is_file():
        command = [str(gnu_time), "-v"] + command
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=repo, check=False,
                            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    if match:
        peak_mb, how = int(match.group(1)) / 1024, "/usr/bin/time -v"
    else:  # RUSAGE_CHILDREN keeps the largest child so far: exact when this child is the largest yet
        peak_mb, how = (after / 1024, "getrusage") if after > before else (float("nan"), "getrusage (not larger)")
    stderr = re.sub(r"\n\tCommand being timed:.*", "", result.stderr, flags=re.DOTALL)
    return {"wall_s": wall, "peak_mb": peak_mb, "how": how, "rc": result.returncode,
            "tail": (result.stdout + stderr).strip().splitlines()[-15:]}


def profile_analysis(inputs: Path, out: Path, repo: Path) -> str:
    """The analysis under cProfile in a child (same as the command line); top 15 by cumulative time."""
    code = ("import cProfile, pstats, sys; sys.argv = ['analyze_results.py', '--experiment-dir', sys.argv[1], "
            "'--out', sys.argv[2]]; import runpy; p = cProfile.Profile(); p.enable();\n"
            "try:\n    runpy.run_path('analyze_results.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "p.disable(); pstats.Stats(p).sort_stats('cumulative').print_stats(15)")
    result = subprocess.run([sys.executable, "-c", code, str(inputs), str(out)], capture_output=True, text=True,
                            cwd=repo, check=False)
    text = result.stdout
    start = text.find("   ncalls")
    return (text[start:] if start >= 0 else text + result.stderr).rstrip()


def disk_usage(folder: Path) -> tuple[int, dict[str, int]]:
    total, by_part = 0, {}
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            size = path.stat().st_size
            total += size
            part = path.relative_to(folder).parts[0]
            by_part[part] = by_part.get(part, 0) + size
    return total, by_part


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=Path, default=cache.cache_root() / "bench-report-v1",
                        help="folder of the generated experiment (default: %(default)s)")
    parser.add_argument("--regenerate", action="store_true", help="generate the inputs again even when cached")
    parser.add_argument("--runs", type=int, default=2, help="timed analysis runs (default 2)")
    parser.add_argument("--history-rows", type=int, default=HISTORY_ROWS, help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of one analysis run")
    parser.add_argument("--repo", type=Path, default=REPO_ROOT,
                        help="checkout whose analyze_results.py is timed (default: this one), e.g. a `git archive` of "
                             "another commit")
    args = parser.parse_args(argv)
    inputs = args.inputs.expanduser().resolve()
    stamp = ensure_inputs(inputs, args.regenerate, args.history_rows)
    total, by_part = disk_usage(inputs)
    c = stamp["counts"]
    print(f"\ninputs: {inputs}  ({total / 2**20:.0f} MiB: "
          + ", ".join(f"{k} {v / 2**20:.1f}" for k, v in sorted(by_part.items()) if v > 2**16) + ")")
    print(f"  {c['results_files']} results files, {c['samples_files']} samples files ({c['sample_lines']:,} lines, "
          f"{c['completions']:,} completions), {c['manifests']} manifests, {c['wandb_runs']} W&B runs x "
          f"{stamp['history_rows']:,} rows")
    print("  generation (not timed by the bound): " + ", ".join(f"{k} {v:.1f} s"
                                                                  for k, v in stamp["generation_seconds"].items()))
    cpus = pin_cores()
    print(f"\nanalysis: {args.runs} runs of {args.repo.resolve() / 'analyze_results.py'}, "
          + (f"pinned to CPUs {cpus}" if cpus else f"on all {os.cpu_count()} CPUs (no more than {CORES} here)"
             if (os.cpu_count() or 0) <= CORES else f"{os.cpu_count()} CPUs (pinning unavailable)"))
    figures = []
    with tempfile.TemporaryDirectory(prefix="bench-report-") as scratch:
        for i in range(args.runs):
            figure = time_analysis(inputs, Path(scratch) / f"report{i + 1}", cpus, args.repo.resolve())
            figures.append(figure)
            print(f"  run {i + 1}: {figure['wall_s']:6.2f} s wall, {figure['peak_mb']:7.1f} MB peak RSS "
                  f"({figure['how']}), exit {figure['rc']}")
            if figure["rc"] != 0:
                print("    " + "\n    ".join(figure["tail"]))
        if args.profile:
            print("\ncProfile of one analysis run (top 15 by cumulative time):")
            print(profile_analysis(inputs, Path(scratch) / "report-profile", args.repo.resolve()))
    print("\n| inputs MiB | results | samples lines | completions | W&B rows | run | wall s | peak MB | result |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    failed = crashed = False
    for i, f in enumerate(figures, 1):
        ok = f["rc"] == 0 and f["wall_s"] <= WALL_BOUND_S and not f["peak_mb"] > RSS_BOUND_MB
        print(f"| {total / 2**20:.0f} | {c['results_files']} | {c['sample_lines']:,} | {c['completions']:,} | "
              f"{c['wandb_rows']:,} | {i} | {f['wall_s']:.2f} | {f['peak_mb']:.0f} | {'PASS' if ok else 'FAIL'} |")
    if not figures:
        return 0
    worst_wall = max(f["wall_s"] for f in figures)
    worst_rss = max(f["peak_mb"] for f in figures)
    for label, value, bound, unit in (("wall time", worst_wall, WALL_BOUND_S, "s"),
                                      ("peak memory", worst_rss, RSS_BOUND_MB, "MB")):
        ok = value <= bound
        failed |= not ok
        print(f"{'PASS' if ok else 'FAIL'}: {label} {value:.1f} {unit} (bound: at most {bound:.0f} {unit}, {CORES} cores)")
    if any(f["rc"] != 0 for f in figures):
        crashed = True
        print(f"FAIL: analyze_results.py exited {sorted({f['rc'] for f in figures})}")
    return 2 if crashed else 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""What each arm cost, beside what it gained (DESIGN.md, contract rule 5).

Per trained arm, from its stage manifest(s), its data manifest and its W&B run:
  prompts seen       a completed stage: epochs x training rows (SFT sequences, RL prompts); a stage that stopped
                     early: its last logged step x examples per step (from its checkpoints index or settings)
  samples generated  RL: prompts seen x samples per prompt; SFT: none
  tokens trained     the trainer's own cumulative counter when its W&B run logged one (TRL train/num_tokens,
                     finetune.py total_tokens, grpo_fast val/num_total_tokens); otherwise estimated from
                     GSM8K's mean lengths at configs/plan.toml's characters per token (SFT: rows x epochs; RL:
                     samples x (prompt + mean response)); "tokens_source" says which
  wall-clock         ended_at - started_at of the final launch plus every earlier attempt that recorded an end
                     (manifest.attempt-*.json: a resumed stage keeps them)
  GPU-hours          wall-clock x GPUs that trained (the manifest's compute record, else its host GPUs) x nodes;
                     a stage that trained on the CPU has none, even on a GPU machine
  FLOPs (estimate)   6 N T for the tokens trained (forward + backward); RL adds 2 N per generated token and,
                     with a KL penalty (beta > 0), 2 N T for the reference model's forward. N: parameters of
                     the trained model's config.json (plan.shape_from_config), else configs/plan.toml
  cost               GPU-hours x configs/plan.toml price_per_gpu_hour (an assumption, printed with it)
  points per GPU-hour  (accuracy of the arm - accuracy of the base) in points, per GPU-hour
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from sft_vs_rlvr.launch import plan

TOKEN_COUNTER_METRIC = "tokens"  # dynamics.METRIC_ALIASES entry of the cumulative token counters


def _seconds(manifest: dict[str, Any]) -> float | None:
    start, end = manifest.get("started_at"), manifest.get("ended_at")
    if not start or not end:
        return None
    parse = lambda text: dt.datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def _parameters(stage_dir: Path, manifest: dict[str, Any], assumptions: dict[str, Any]) -> tuple[float | None, str]:
    config = stage_dir / (manifest.get("final_model") or "model") / "config.json"
    if config.is_file():
        try:
            return plan.shape_from_config(json.loads(config.read_text()), "").parameters, "final model config.json"
        except (KeyError, ValueError, TypeError):
            pass
    base = ((manifest.get("settings") or {}).get("shared") or {}).get("base_model")
    known = (assumptions.get("models") or {}).get(base)
    if known:
        return float(known["parameters"]), "configs/plan.toml"
    return None, "unknown"


def _rows(manifest: dict[str, Any], name: str) -> int | None:
    return (((manifest.get("data") or {}).get("files") or {}).get(name) or {}).get("rows")


def arm_budget(stage_dir: Path, stage: str, manifest: dict[str, Any], dynamics: dict[str, Any],
               assumptions: dict[str, Any]) -> dict[str, Any]:
    """The budget of one trained arm; every estimate says where it came from."""
    settings = manifest.get("settings") or {}
    shared, arm = settings.get("shared") or {}, settings.get("sft" if stage == "sft" else "rlvr") or {}
    rl = stage != "sft"
    rows = _rows(manifest, "rl_train.jsonl" if rl else "sft_train.jsonl")
    epochs = arm.get("epochs")
    checkpoints = [c for c in manifest.get("checkpoints") or [] if c.get("examples_seen") is not None]
    metrics = dynamics.get("metrics") or {}
    last_step = max((c["last"][0] for c in metrics.values()), default=None)
    per_step = dynamics.get("examples_per_step")
    if rows and epochs and manifest.get("status") == "completed":
        prompts, prompts_source = rows * epochs, "training rows x epochs (a completed stage)"
    elif per_step and last_step:  # stopped early: as far as its W&B run got
        prompts, prompts_source = per_step * last_step, "last logged step x examples per step"
    else:
        prompts, prompts_source = (checkpoints[-1]["examples_seen"] if checkpoints else None), "last checkpoint"
    samples = prompts * arm.get("samples_per_prompt", 0) if rl and prompts is not None else 0

    counter = metrics.get(TOKEN_COUNTER_METRIC)
    chars_per_token = assumptions["lengths"]["chars_per_token"]
    if counter:
        tokens, tokens_source = float(counter["last"][1]), f"W&B {counter['key']} (last value)"
    elif not rl and rows and epochs:
        per_row = (assumptions["lengths"]["gsm8k_question_chars"] + assumptions["lengths"]["gsm8k_solution_chars"]) \
            / chars_per_token
        tokens = min(per_row, shared.get("max_prompt_length", 0) + shared.get("max_response_length", 0)) * rows * epochs
        tokens_source = f"estimate: GSM8K mean lengths at {chars_per_token} characters per token"
    else:
        tokens, tokens_source = None, "unknown (no token counter in W&B)"
    length_curve = metrics.get("response_length")
    generated = None
    if rl and samples:
        mean_length = (sum(v for _, v in length_curve["points"]) / len(length_curve["points"]) if length_curve
                       else shared.get("max_response_length", 0) * assumptions["lengths"]["rl_response_fill"])
        generated = samples * mean_length
        if tokens is None:  # every sampled sequence (prompt + response) is trained on once
            prompt = (assumptions["lengths"]["gsm8k_question_chars"] + 40) / chars_per_token
            tokens = samples * prompt + generated
            tokens_source = (f"estimate: samples x (GSM8K mean prompt at {chars_per_token} characters per token "
                             f"+ {'mean logged' if length_curve else 'assumed'} response length)")

    attempts = sorted(stage_dir.glob("manifest.attempt-*.json"))
    durations = [_seconds(manifest)] + [_seconds(json.loads(p.read_text())) for p in attempts]
    wall = sum(d for d in durations if d is not None) if any(d is not None for d in durations) else None
    host = manifest.get("host") or {}
    compute = manifest.get("compute")  # what trained; older manifests only list the host's GPUs
    gpus = (compute["gpus"] if compute else len(host.get("gpus") or [])) * int(host.get("num_nodes") or 1)
    gpu_hours = wall / 3600 * gpus if wall is not None and gpus else None  # CPU-only runs: no GPU-hours
    parameters, parameters_source = _parameters(stage_dir, manifest, assumptions)
    flops = None
    if parameters and tokens is not None:
        flops = 6 * parameters * tokens
        if rl:
            flops += 2 * parameters * (generated or 0)
            if arm.get("beta", 0) > 0:
                flops += 2 * parameters * tokens
    price = assumptions["hardware"]["price_per_gpu_hour"]
    return {
        "arm": stage, "epochs": epochs, "training_rows": rows,
        "prompts_seen": prompts, "prompts_source": prompts_source,
        "samples_per_prompt": arm.get("samples_per_prompt") if rl else None, "samples_generated": samples,
        "tokens_trained": tokens, "tokens_source": tokens_source,
        "tokens_generated": generated, "wall_seconds": wall, "attempts": 1 + len(attempts),
        "attempts_without_end": sum(d is None for d in durations), "gpus": gpus, "gpu_hours": gpu_hours,
        "parameters": parameters, "parameters_source": parameters_source, "flops": flops,
        "cost_usd": gpu_hours * price if gpu_hours is not None else None, "price_per_gpu_hour": price,
    }


def with_gains(budgets: dict[str, dict[str, Any]], accuracy: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Add accuracy and points gained over the base per GPU-hour (None without GPUs or without a base)."""
    base = accuracy.get("base")
    for arm, budget in budgets.items():
        budget["accuracy"] = accuracy.get(arm)
        gain = 100 * (accuracy[arm] - base) if arm in accuracy and base is not None else None
        budget["points_over_base"] = gain
        hours = budget["gpu_hours"]
        budget["points_per_gpu_hour"] = gain / hours if gain is not None and hours else None
    return budgets

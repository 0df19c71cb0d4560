"""What each arm cost, beside what it gained (DESIGN.md, contract rule 5).

Per trained arm, from its stage manifest(s), its data manifest and its W&B run:
  prompts seen       a completed stage: epochs x training rows (SFT sequences, RL prompts); a stage that stopped
                     early: its last logged step x examples per step (from its checkpoints index or settings)
  sequences trained  the same unit for both arms: SFT one per row seen; RL one per sampled response (an RL
                     prompt with 8 samples is 8 sequences)
  samples generated  RL: prompts seen x samples per prompt; SFT: none
  tokens trained     the trainer's own cumulative counter when its W&B run logged one (TRL train/num_tokens,
                     finetune.py total_tokens, grpo_fast val/num_total_tokens divided by its learner count:
                     every learner adds the whole batch's lengths, oi-grpo-v030.md §4); otherwise estimated from
                     GSM8K's mean lengths at configs/plan.toml's characters per token (SFT: rows x epochs; RL:
                     samples x (prompt + mean response)); "tokens_source" says which
  tokens generated   RL: samples x mean response length (logged; grpo_fast logs the surviving groups' only)
  tokens processed   trained + generated (an RL response counts in both: generated, then trained on)
  optimizer updates  the last step of the run's W&B curves (one update per step for finetune.py, TRL and
                     grpo_fast with num_epochs = num_mini_batches = 1), else from the settings
  summed LR          sum over updates of the learning rate (the logged curve, each value held until the next
                     logged step), else the settings' schedule (linear decay to 0: peak x updates / 2)
  wall-clock         ended_at - started_at of the final launch plus every earlier attempt that recorded an end
                     (manifest.attempt-*.json: a resumed stage keeps them), split into start-up, checkpoint I/O
                     and compute (wall_clock.py); the three add up to it
  GPU-hours          wall-clock x GPUs that trained (the manifest's compute record, else its host GPUs) x nodes,
                     and the same split; a stage that trained on the CPU has none, even on a GPU machine
  FLOPs (estimate)   6 N T for the tokens trained (forward + backward); RL adds 2 N per generated token and,
                     with a KL penalty (beta > 0), 2 N T for the reference model's forward. N: parameters of
                     the trained model's config.json (plan.shape_from_config), else configs/plan.toml
  cost               GPU-hours x configs/plan.toml price_per_gpu_hour (an assumption, printed with it)
  points per ...     (accuracy of the arm - accuracy of the base) in points, per GPU-hour, per compute GPU-hour
                     and per 10^18 FLOPs
  pilot              the RL pilot's numbers (manifest "pilot", from pilot.json) beside the RL arm's budget
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sft_vs_rlvr.launch import plan
from sft_vs_rlvr.report import wall_clock

TOKEN_COUNTER_METRIC = "tokens"  # dynamics.METRIC_ALIASES entry of the cumulative token counters


def _seconds(manifest: dict[str, Any]) -> float | None:
    start, end = wall_clock.parse_time(manifest.get("started_at")), wall_clock.parse_time(manifest.get("ended_at"))
    return end - start if start is not None and end is not None else None


def _learners(manifest: dict[str, Any]) -> int:
    """grpo_fast's learner count from its command (--num_learners_per_node 2 2 ...: one number per node)."""
    command = manifest.get("command") or []
    if "--num_learners_per_node" not in command:
        return 1
    counts = []
    for arg in command[command.index("--num_learners_per_node") + 1:]:
        if not str(arg).isdigit():
            break
        counts.append(int(arg))
    return sum(counts) or 1


def _updates(metrics: dict[str, Any], stage: str, arm: dict[str, Any],
             prompts: float | None) -> tuple[float | None, str]:
    steps = [c["last"][0] for key, c in metrics.items() if key in ("loss", "learning_rate", "grad_norm")]
    if steps:
        return max(steps), "last logged optimizer step (W&B)"
    per_step = arm.get("effective_batch_size") if stage == "sft" else arm.get("prompts_per_step")
    if prompts and per_step:
        return math.ceil(prompts / per_step), "settings: examples seen / examples per step"
    return None, "unknown"


def _lr_sum(metrics: dict[str, Any], arm: dict[str, Any], updates: float | None) -> tuple[float | None, str]:
    curve = metrics.get("learning_rate")
    if curve and curve["n_points"] > 1:
        points, total, previous = curve["points"], 0.0, 0.0
        for step, value in points:  # each logged value holds for the steps since the previous one
            total += value * (step - previous)
            previous = step
        return total, f"W&B {curve['key']}, summed over steps"
    if updates and arm.get("learning_rate"):
        return arm["learning_rate"] * updates / 2, "settings: linear decay from the peak (peak x updates / 2)"
    return None, "unknown"


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
    if counter and counter["key"] == "val/num_total_tokens" and _learners(manifest) > 1:
        learners = _learners(manifest)
        tokens = float(counter["last"][1]) / learners
        tokens_source = f"W&B {counter['key']} (last value) / {learners} learners"
    elif counter:
        tokens, tokens_source = float(counter["last"][1]), f"W&B {counter['key']} (last value)"
    elif not rl and rows and epochs:
        per_row = (assumptions["lengths"]["gsm8k_question_chars"] + assumptions["lengths"]["gsm8k_solution_chars"]) \
            / chars_per_token
        tokens = min(per_row, shared.get("max_prompt_length", 0) + shared.get("max_response_length", 0)) * rows * epochs
        tokens_source = f"estimate: GSM8K mean lengths at {chars_per_token} characters per token"
    else:
        tokens, tokens_source = None, "unknown (no token counter in W&B)"
    length_curve = metrics.get("response_length") or metrics.get("response_length_survivors")
    generated, generated_source = None, None
    if rl and samples:
        mean_length = (sum(v for _, v in length_curve["points"]) / len(length_curve["points"]) if length_curve
                       else shared.get("max_response_length", 0) * assumptions["lengths"]["rl_response_fill"])
        generated = samples * mean_length
        generated_source = (f"samples x mean of W&B {length_curve['key']}"
                            + (" (surviving groups only)" if "survivors" in str(length_curve.get("note")) else "")
                            if length_curve else "samples x assumed response length (configs/plan.toml)")
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
    beta = arm.get("beta", 0) if rl else 0
    flops = None
    if parameters and tokens is not None:
        flops = 6 * parameters * tokens
        if rl:
            flops += 2 * parameters * (generated or 0)
            if beta > 0:
                flops += 2 * parameters * tokens
    split = wall_clock.split(manifest, dynamics.get("_history"), wall, durations[0], assumptions, parameters, rl, beta)
    hours = {part: split[f"{part}_seconds"] / 3600 * gpus if split and gpus else None
             for part in ("startup", "io", "compute")}
    updates, updates_source = _updates(metrics, stage, arm, prompts)
    lr_sum, lr_sum_source = _lr_sum(metrics, arm, updates)
    price = assumptions["hardware"]["price_per_gpu_hour"]
    return {
        "arm": stage, "epochs": epochs, "training_rows": rows,
        "prompts_seen": prompts, "prompts_source": prompts_source,
        "sequences_trained": samples if rl else prompts,
        "samples_per_prompt": arm.get("samples_per_prompt") if rl else None, "samples_generated": samples,
        "tokens_trained": tokens, "tokens_source": tokens_source,
        "tokens_generated": generated, "tokens_generated_source": generated_source,
        "tokens_processed": tokens + (generated or 0) if tokens is not None else None,
        "optimizer_updates": updates, "optimizer_updates_source": updates_source,
        "lr_sum": lr_sum, "lr_sum_source": lr_sum_source,
        "wall_seconds": wall, "attempts": 1 + len(attempts),
        "attempts_without_end": sum(d is None for d in durations), "wall_split": split,
        "gpus": gpus, "gpu_hours": gpu_hours, "gpu_hours_startup": hours["startup"], "gpu_hours_io": hours["io"],
        "gpu_hours_compute": hours["compute"],
        "parameters": parameters, "parameters_source": parameters_source, "flops": flops,
        "cost_usd": gpu_hours * price if gpu_hours is not None else None, "price_per_gpu_hour": price,
        "pilot": manifest.get("pilot") if rl else None,
    }


def with_gains(budgets: dict[str, dict[str, Any]], accuracy: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Add accuracy and points gained over the base per GPU-hour, per compute GPU-hour and per 10^18 FLOPs
    (None without GPUs, FLOPs or a base). SFT then RLVR is measured from the base too: its budget counts only
    its RL stage, so its rates are per that stage's cost."""
    base = accuracy.get("base")
    for arm, budget in budgets.items():
        budget["accuracy"] = accuracy.get(arm)
        gain = 100 * (accuracy[arm] - base) if arm in accuracy and base is not None else None
        budget["points_over_base"] = gain
        for key, total, scale in (("points_per_gpu_hour", "gpu_hours", 1), ("points_per_compute_gpu_hour",
                                                                            "gpu_hours_compute", 1),
                                  ("points_per_exaflop", "flops", 1e-18)):
            amount = budget[total]
            budget[key] = gain / (amount * scale) if gain is not None and amount else None
    return budgets

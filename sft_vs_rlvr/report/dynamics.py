"""Learning dynamics: the training curves of each stage, read from its W&B run.

Metric names differ by trainer and by open-instruct version, so each curve has a list of W&B keys and
the first one with data wins (the key used is reported beside the curve):
  TRL (tiny profile)            train/loss, train/learning_rate, train/grad_norm, train/reward, train/kl,
                                train/entropy, train/completions/mean_length, train/completions/clipped_ratio
  open-instruct finetune.py     train_loss, learning_rate (no train/ prefix; step = completed optimizer steps)
  open-instruct grpo_fast.py    v0.3.0 (open-instruct-notes.md 2.6): objective/verifiable_reward, scores,
                                objective/kl0_avg (the k1 estimator; before v0.3.0 it was objective/kl_avg),
                                loss/policy_avg, policy/entropy_avg (only with --record_entropy),
                                val/sequence_lengths, val/stop_rate, lr, optim/grad_norm; step = training_step
A "1 - key" alias is derived: open-instruct logs the stop rate, TRL the share of clipped (truncated) responses.

Shared axis: each stage's steps are converted to training examples seen (SFT sequences, RL prompts) with the
examples per step of its own checkpoints index (or its settings), so both arms can be drawn on one axis.

A W&B run whose project, group or id differs from what the stage manifest names belongs to another
experiment: that is an error naming the run file, not a curve silently drawn from someone else's run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sft_vs_rlvr.errors import UserError
from sft_vs_rlvr.report import wandb_runs
from sft_vs_rlvr.report.wandb_runs import CorruptRunFile, MissingInput

METRIC_ALIASES = {
    "loss": ("train/loss", "train_loss", "loss/policy_avg"),
    "learning_rate": ("train/learning_rate", "learning_rate", "lr"),
    "grad_norm": ("train/grad_norm", "optim/grad_norm"),
    "reward": ("train/reward", "objective/verifiable_reward", "scores", "objective/scores"),
    "reward_std": ("train/reward_std",),
    "kl": ("train/kl", "objective/kl0_avg", "objective/kl_avg", "objective/kl"),
    "entropy": ("train/entropy", "policy/entropy_avg"),
    "response_length": ("train/completions/mean_length", "val/sequence_lengths"),
    "truncated_ratio": ("train/completions/clipped_ratio", "1 - val/stop_rate"),
    "tokens": ("train/num_tokens", "total_tokens", "val/num_total_tokens"),
}
METRIC_TITLES = {
    "loss": "training loss (RL: policy loss)", "learning_rate": "learning rate", "grad_norm": "gradient norm",
    "reward": "mean reward", "reward_std": "reward std within batch", "kl": "KL to the reference (k1)",
    "entropy": "policy entropy", "response_length": "mean response length (tokens)",
    "truncated_ratio": "share of responses truncated", "tokens": "tokens trained (cumulative)",
}
STEP_KEYS = ("train/global_step", "training_step", "_step")  # first one present in the metric's rows
STAGE_METRICS = {
    "sft": ("loss", "learning_rate", "grad_norm", "tokens"),
    "rlvr": ("reward", "reward_std", "kl", "entropy", "response_length", "truncated_ratio", "loss", "grad_norm",
             "learning_rate", "tokens"),
}
STAGE_METRICS["sft_rlvr"] = STAGE_METRICS["rlvr"]
# Curves drawn (the tokens counter feeds the budgets, not a panel).
PLOTTED = ("loss", "learning_rate", "grad_norm", "reward", "reward_std", "kl", "entropy", "response_length",
           "truncated_ratio")


def _series(rows: list[dict[str, Any]], key: str, step_key: str) -> list[list[float]]:
    if key.startswith("1 - "):
        return [[step, 1 - value] for step, value in wandb_runs.series(rows, key[4:], step_key)]
    return wandb_runs.series(rows, key, step_key)


def extract_metrics(stage: str, history: list[dict[str, Any]]) -> dict[str, Any]:
    """The stage's curves from a W&B history, each under the first alias that has data."""
    metrics = {}
    for metric in STAGE_METRICS[stage]:
        for key in METRIC_ALIASES[metric]:
            raw = key[4:] if key.startswith("1 - ") else key
            rows = [row for row in history if raw in row]
            step_key = next((s for s in STEP_KEYS if any(s in row for row in rows)), None)
            points = _series(rows, key, step_key) if step_key else []
            if points:
                values = [value for _, value in points]
                metrics[metric] = {"key": key, "step_key": step_key, "points": points, "n_points": len(points),
                                   "first": points[0], "last": points[-1], "min": min(values), "max": max(values)}
                break
    return metrics


def examples_per_step(manifest: dict[str, Any], stage: str) -> tuple[float | None, str]:
    """Training examples per logged step: from the checkpoints index when it has one, else the settings."""
    for checkpoint in manifest.get("checkpoints") or []:
        if checkpoint.get("step") and checkpoint.get("examples_seen") is not None:
            return checkpoint["examples_seen"] / checkpoint["step"], "checkpoints index"
    arm = (manifest.get("settings") or {}).get("sft" if stage == "sft" else "rlvr") or {}
    value = arm.get("effective_batch_size") if stage == "sft" else arm.get("prompts_per_step")
    return (float(value), "settings") if value else (None, "unknown")


def check_identity(run: wandb_runs.OfflineRun, info: dict[str, Any], where: str, manifest_file: str) -> None:
    """Refuse a W&B run of another experiment: its project, group or id must be the manifest's."""
    expected = {"project": info.get("project"), "group": info.get("group"), "run_id": info.get("run_id")}
    found = {"project": run.project, "group": run.group, "run_id": run.run_id}
    wrong = [f"{key} {found[key]!r} (manifest: {value!r})" for key, value in expected.items()
             if value is not None and found[key] is not None and found[key] != value]
    if wrong:
        raise UserError(f"{where} is a W&B run of another experiment: {', '.join(wrong)}; {manifest_file} names "
                        "this experiment's run: remove the stray run folder or rerun the stage")


def stage_dynamics(experiment_dir: Path, stage: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """The curves of one training stage from the W&B run its manifest names; holds "missing" when absent."""
    info = manifest.get("wandb") or {}
    source = {key: info.get(key) for key in ("mode", "project", "group", "run_id", "url")}
    try:
        run, where = wandb_runs.run_for_manifest(experiment_dir / stage, manifest)
    except (MissingInput, CorruptRunFile) as error:
        return {"source": source, "missing": f"no W&B history for {stage}: {error}"}
    shown = str(Path(where).relative_to(experiment_dir)) if Path(where).is_relative_to(experiment_dir) else where
    check_identity(run, info, shown, f"{stage}/manifest.json")
    source["run_file"] = shown
    metrics = extract_metrics(stage, run.history)
    per_step, per_step_source = examples_per_step(manifest, stage)
    if not metrics:
        wanted = sorted({key for metric in STAGE_METRICS[stage] for key in METRIC_ALIASES[metric]})
        return {"source": source, "missing": f"the {stage} W&B run has none of {', '.join(wanted)}"}
    return {"source": source, "metrics": metrics, "examples_per_step": per_step,
                      "examples_per_step_source": per_step_source,
                      "examples_unit": "sequences" if stage == "sft" else "prompts"}

"""Learning dynamics: the training curves of each stage, read from its W&B run.

Metric names differ by trainer and by open-instruct version, so each generic curve has a list of W&B keys and
the first one with data wins (the key used is reported beside the curve):
  TRL (tiny profile)            train/loss, train/learning_rate, train/grad_norm, train/num_tokens
  open-instruct finetune.py     train_loss, learning_rate, total_tokens (no train/ prefix; step = completed
                                optimizer steps)
  open-instruct grpo_fast.py    loss/policy_avg, lr, optim/grad_norm, val/num_total_tokens; step = training_step
The RL stages' reward, solve rate, share of groups trained, in-loop evaluation, entropy, KL, length and
truncation come from rl_signals.py, which reads the trainers' unbiased signals (grpo_fast's logged reward
covers only the groups its zero-variance filter kept) and names every curve it cannot rebuild, with the reason,
under "unavailable".

Shared axis: each stage's steps are converted to training examples seen (SFT sequences, RL prompts) with the
examples per step of its own checkpoints index (or its settings), so both arms can be drawn on one axis.

A W&B run whose project, group or id differs from what the stage manifest names belongs to another
experiment: that is an error naming the run file, not a curve silently drawn from someone else's run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sft_vs_rlvr.errors import UserError
from sft_vs_rlvr.report import rl_signals, wall_clock, wandb_runs
from sft_vs_rlvr.report.wandb_runs import CorruptRunFile, MissingInput

METRIC_ALIASES = {
    "loss": ("train/loss", "train_loss", "loss/policy_avg"),
    "learning_rate": ("train/learning_rate", "learning_rate", "lr"),
    "grad_norm": ("train/grad_norm", "optim/grad_norm"),
    "tokens": ("train/num_tokens", "total_tokens", "val/num_total_tokens"),
}
METRIC_TITLES = {
    "loss": "training loss (RL: policy loss)", "learning_rate": "learning rate", "grad_norm": "gradient norm",
    "tokens": "tokens trained (cumulative)", **rl_signals.TITLES,
}
STEP_KEYS = ("train/global_step", "training_step", "_step")  # first one present in the metric's rows
STAGE_METRICS = {"sft": ("loss", "learning_rate", "grad_norm", "tokens"),
                 "rlvr": ("loss", "grad_norm", "learning_rate", "tokens")}
STAGE_METRICS["sft_rlvr"] = STAGE_METRICS["rlvr"]
# Curves drawn (the tokens counter feeds the budgets, not a panel); the unbiased RL curves first.
PLOTTED = ("solve_rate", "trained_groups", "eval_pass_at_1", "eval_stop_rate", "entropy", "kl", "response_length",
           "truncated_ratio", "reward_survivors", "loss", "learning_rate", "grad_norm")


def extract(stage: str, history: list[dict[str, Any]], beta: float | None = None) -> tuple[dict[str, Any],
                                                                                           dict[str, str]]:
    """The stage's curves from a W&B history ({metric: curve}, each generic one under the first alias that has
    data) and, for an RL stage, the curves that cannot be rebuilt ({metric: reason})."""
    metrics: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    if stage != "sft":
        metrics, unavailable = rl_signals.rl_curves(history, beta)
    for metric in STAGE_METRICS[stage]:
        for key in METRIC_ALIASES[metric]:
            rows = [row for row in history if key in row]
            step_key = next((s for s in STEP_KEYS if any(s in row for row in rows)), None)
            points = wandb_runs.series(rows, key, step_key) if step_key else []
            if points:
                metrics[metric] = wandb_runs.curve(points, key, step_key)
                break
    return metrics, unavailable


def extract_metrics(stage: str, history: list[dict[str, Any]], beta: float | None = None) -> dict[str, Any]:
    """The stage's curves (extract without the unavailable ones)."""
    return extract(stage, history, beta)[0]


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
    beta = ((manifest.get("settings") or {}).get("rlvr") or {}).get("beta")
    metrics, unavailable = extract(stage, run.history, beta)
    per_step, per_step_source = examples_per_step(manifest, stage)
    if not metrics:
        wanted = sorted({key for metric in STAGE_METRICS[stage] for key in METRIC_ALIASES[metric]})
        return {"source": source, "missing": f"the {stage} W&B run has none of {', '.join(wanted)}"}
    out = {"source": source, "metrics": metrics, "examples_per_step": per_step,
           "examples_per_step_source": per_step_source,
           "examples_unit": "sequences" if stage == "sft" else "prompts"}
    if stage != "sft":
        out["trainer"] = rl_signals.trainer_of(run.history)
        out["unavailable"] = unavailable
    # The rows' timestamps and time keys feed the wall-clock split (budgets); left out of report.json.
    out["_history"] = [{key: row[key] for key in wall_clock.KEYS if key in row} for row in run.history]
    return out

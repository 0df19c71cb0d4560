"""Sample efficiency: accuracy of each arm's intermediate checkpoints against what training had consumed.

Each arm's curve starts at its starting model (the base; the SFT model for SFT then RLVR) with nothing
consumed, goes through its evaluated checkpoints (eval/<arm>_step<N>_results.json, examples_seen from the
stage's checkpoints index) and ends at its final model (all the arm's prompts seen). The axes are the fair
ones (budgets.py): FLOPs, tokens processed (trained + generated) and sequences (an RL prompt with 8 samples
is 8 sequences), with compute GPU-hours (start-up and checkpoint writes left out) in report.json. Each total
at a checkpoint is the arm's total scaled by its share of the examples: training consumes them at a
near-constant rate, so this is an estimate, marked as such.

Examples to reach a target accuracy: the target is a setting (`analyze_results.py --target-accuracy`), by
default the midpoint between the base and the best final arm (headline grader). Reported both as the first
evaluated point at or above the target and linearly interpolated between it and the point before, since the
checkpoints are only as dense as the stage saved them.
"""

from __future__ import annotations

from typing import Any

START = {"sft": "base", "rlvr": "base", "sft_rlvr": "sft"}
# Point key -> budget total it is scaled from; the first three are the figure's axes.
AXES = {"flops": "flops", "tokens_processed": "tokens_processed", "sequences": "sequences_trained",
        "compute_gpu_hours": "gpu_hours_compute", "tokens": "tokens_trained", "gpu_hours": "gpu_hours"}
REACH_KEYS = ("examples", "sequences", "tokens_processed", "flops", "compute_gpu_hours")


def curves(checkpoints: list[dict[str, Any]], finals: dict[str, float], budgets: dict[str, dict[str, Any]],
           grader: str) -> dict[str, list[dict[str, Any]]]:
    """Per arm, points {"label", "step", "examples", every AXES key, "accuracy"} in order of examples."""
    out = {}
    for arm, start in START.items():
        budget = budgets.get(arm) or {}
        own = [c for c in checkpoints if c["arm"] == arm]
        if arm not in finals and not own:
            continue
        total = budget.get("prompts_seen")
        points = []
        if start in finals:
            points.append({"label": start, "step": 0, "examples": 0})
            points[-1]["accuracy"] = finals[start]
        for c in own:
            points.append({"label": c["name"], "step": c["step"], "examples": c["examples_seen"],
                           "accuracy": c[f"accuracy_{grader}"]})
        if arm in finals:
            points.append({"label": arm, "step": None, "examples": total, "accuracy": finals[arm]})
        for point in points:
            share = point["examples"] / total if total and point["examples"] is not None else None
            for key, total_key in AXES.items():
                value = budget.get(total_key)
                point[key] = value * share if value is not None and share is not None else None
        points = [p for p in points if p["examples"] is not None]
        out[arm] = sorted(points, key=lambda p: p["examples"])
    return out


def default_target(finals: dict[str, float]) -> float | None:
    """Midpoint between the base and the best final arm; None without both."""
    arms = [finals[a] for a in START if a in finals]
    if "base" not in finals or not arms:
        return None
    return (finals["base"] + max(arms)) / 2


def to_reach(points: list[dict[str, Any]], target: float) -> dict[str, Any]:
    """First point at or above target, and the crossing interpolated from the point before it."""
    for i, point in enumerate(points):
        if point["accuracy"] >= target:
            reached = {"reached": True, "at": point["label"]}
            for key in REACH_KEYS:
                reached[key] = point[key]
                before = points[i - 1] if i else None
                if before is None or before[key] is None or point[key] is None:
                    reached[f"{key}_interpolated"] = point[key]
                    continue
                rise = point["accuracy"] - before["accuracy"]
                fraction = (target - before["accuracy"]) / rise if rise > 0 else 1.0
                reached[f"{key}_interpolated"] = before[key] + fraction * (point[key] - before[key])
            return reached
    best = max((p["accuracy"] for p in points), default=None)
    return {"reached": False, "best_accuracy": best}


def analyze(checkpoints: list[dict[str, Any]], finals: dict[str, float], budgets: dict[str, dict[str, Any]],
            grader: str, target: float | None = None) -> dict[str, Any]:
    by_arm = curves(checkpoints, finals, budgets, grader)
    chosen = target if target is not None else default_target(finals)
    return {
        "grader": grader,
        "target": chosen,
        "target_source": "--target-accuracy" if target is not None else "midpoint of base and best final arm",
        "curves": by_arm,
        "to_target": {arm: to_reach(points, chosen) for arm, points in by_arm.items()} if chosen is not None else {},
    }

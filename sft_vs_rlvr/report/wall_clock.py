"""Split a stage's wall-clock into start-up, checkpoint I/O and compute, so GPU-hours compare like with like.

A stage's wall-clock (manifest started_at to ended_at) holds more than training: loading the model, Ray and
vLLM start-up, and writing the checkpoints the learning curves need. "Points per GPU-hour" over the whole
wall-clock charges an arm for its own snapshots, so the budget shows the three parts, and they always add up
to the wall-clock: compute = wall-clock - start-up - checkpoint I/O (compute here is everything else:
generation, training, weight syncs, in-loop evaluation).

From the run's own timestamps where they cover the stage (every W&B history row has _timestamp):
  grpo_fast (time/* keys, oi-grpo-v030.md §8)
    start-up   training_start - started_at, with training_start = _timestamp(k) - val/num_total_tokens(k) /
               learner_tokens_per_second_overall(k) at the first step k that has both (the ratio is the time
               since grpo_fast's training_start_time; the learner count cancels), else the first row's
               _timestamp - time/total
    I/O        sum of time/saving (the HF snapshots, inside the step) + after each snapshot step k the gap
               _timestamp(k+1) - _timestamp(k) - time/total(k+1) beyond its median over the other steps (the
               training-state save runs after logging) + ended_at - the last row (final save, shut-down)
  finetune.py, TRL (no time keys; they log each step, then save)
    start-up   first row's _timestamp - started_at - one typical step (median seconds per step between rows)
    I/O        after each checkpoint step, the gap to the next row beyond the typical step time for the steps
               between + ended_at - the last row (final save, shut-down)
Otherwise (no timestamps, or timestamps outside the stage's start and end: a run logged elsewhere, or W&B rows
written by a test) from the plan's assumptions (configs/plan.toml), labelled as such: start-up
startup_minutes, I/O = bytes written / disk_write_gib_per_s with DeepSpeed training states 14 bytes per
parameter (16 with a reference model), model snapshots 2 (bf16; 4 on a CPU), compute the rest.

A resumed stage (manifest.attempt-*.json) is split from its final attempt; the earlier attempts' seconds are
split in the same proportions, and the note says so.
"""

from __future__ import annotations

import datetime as dt
import statistics
from typing import Any

from sft_vs_rlvr.report.wandb_runs import is_number

SLACK_SECONDS = 120.0  # clocks of the launcher and the trainer on one machine; W&B flushes a little late
# The history keys the split reads (the rest of a run's rows need not be kept for it).
KEYS = ("_timestamp", "_step", "training_step", "train/global_step", "time/total", "time/saving",
        "val/num_total_tokens", "learner_tokens_per_second_overall")
GIB = 2**30


def parse_time(text: str | None) -> float | None:
    """Seconds since the epoch of a manifest's ISO time ("2026-11-26T21:00:00Z"), None when absent."""
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _rows(history: list[dict[str, Any]], step_key: str) -> list[tuple[float, float, dict[str, Any]]]:
    """(step, timestamp, row) of the first row logged at each step, in step order."""
    seen: dict[float, tuple[float, float, dict[str, Any]]] = {}
    for row in history:
        step, stamp = row.get(step_key), row.get("_timestamp")
        if is_number(step) and is_number(stamp) and step not in seen:
            seen[step] = (step, stamp, row)
    return sorted(seen.values(), key=lambda item: item[0])


def _step_key(history: list[dict[str, Any]]) -> str | None:
    for key in ("training_step", "train/global_step", "_step"):
        if any(key in row for row in history[:50]):
            return key
    return None


def measured(history: list[dict[str, Any]], started: float, ended: float,
             checkpoint_steps: set[float]) -> dict[str, Any] | None:
    """Start-up and I/O seconds of one attempt from its W&B rows; None when they do not cover it."""
    step_key = _step_key(history)
    rows = _rows(history, step_key) if step_key else []
    if len(rows) < 2:
        return None
    last_stamp = max(row["_timestamp"] for row in history if is_number(row.get("_timestamp")))
    if rows[0][1] < started - SLACK_SECONDS or last_stamp > ended + SLACK_SECONDS:
        return None  # logged at another time than this stage ran
    tail = max(0.0, ended - last_stamp)
    if any("time/total" in row for _, _, row in rows):
        return _grpo_fast(rows, started, tail, checkpoint_steps)
    per_step = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(rows, rows[1:]) if b[0] > a[0]]
    typical = statistics.median(per_step)
    startup = max(0.0, rows[0][1] - started - typical * max(1.0, rows[0][0]))
    saves = sum(max(0.0, (b[1] - a[1]) - typical * (b[0] - a[0]))
                for a, b in zip(rows, rows[1:]) if a[0] in checkpoint_steps)
    return {"startup_seconds": startup, "io_seconds": saves + tail,
            "details": {"checkpoint_saves_seconds": saves, "after_last_step_seconds": tail,
                        "typical_seconds_per_step": typical}}


def _grpo_fast(rows: list[tuple[float, float, dict[str, Any]]], started: float, tail: float,
               checkpoint_steps: set[float]) -> dict[str, Any]:
    training_start = None
    for _, stamp, row in rows:
        tokens, rate = row.get("val/num_total_tokens"), row.get("learner_tokens_per_second_overall")
        if is_number(tokens) and is_number(rate) and tokens > 0 and rate > 0:
            training_start = stamp - tokens / rate
            break
    if training_start is None:
        training_start = rows[0][1] - (rows[0][2].get("time/total") or 0.0)
    snapshots = sum(row.get("time/saving") or 0.0 for _, _, row in rows if is_number(row.get("time/saving")))
    # After logging step k: the training-state save (at snapshot steps), eval collection, the sync trigger.
    after = {a[0]: (b[1] - a[1]) - (b[2].get("time/total") or 0.0) for a, b in zip(rows, rows[1:])}
    usual = [gap for step, gap in after.items() if step not in checkpoint_steps]
    baseline = statistics.median(usual) if usual else 0.0
    states = sum(max(0.0, gap - baseline) for step, gap in after.items() if step in checkpoint_steps)
    return {"startup_seconds": max(0.0, training_start - started), "io_seconds": snapshots + states + tail,
            "details": {"snapshot_saves_seconds": snapshots, "state_saves_seconds": states,
                        "after_last_step_seconds": tail}}


def planned(manifest: dict[str, Any], wall: float, assumptions: dict[str, Any], parameters: float | None,
            rl: bool, beta: float) -> dict[str, Any]:
    """Start-up and I/O seconds by the plan's assumptions (configs/plan.toml)."""
    hardware = assumptions["hardware"]
    cpu = (manifest.get("compute") or {}).get("device") == "cpu"
    model_bytes = (4 if cpu else 2) * (parameters or 0)
    state_bytes = (16 if beta > 0 else 14) * (parameters or 0)
    written = model_bytes  # the final model
    for checkpoint in manifest.get("checkpoints") or []:
        if checkpoint.get("kind") == "training_state":
            written += state_bytes
        else:  # a model snapshot; grpo_fast writes a training state beside each (--checkpoint_state_freq)
            written += model_bytes + (state_bytes if rl and "grpo_fast" in (manifest.get("command_line") or "") else 0)
    startup = hardware["startup_minutes"] * 60
    io = written / (hardware["disk_write_gib_per_s"] * GIB)
    note = (f"the plan's assumptions (configs/plan.toml): start-up {hardware['startup_minutes']:g} min, "
            f"{written / GIB:.3g} GiB written at {hardware['disk_write_gib_per_s']:g} GiB/s")
    if startup + io > wall:  # a short stage: shrink both to fit, keep their ratio
        scale = wall / (startup + io)
        startup, io = startup * scale, io * scale
        note += "; scaled down to fit the wall-clock"
    return {"startup_seconds": startup, "io_seconds": io, "note": note}


def split(manifest: dict[str, Any], history: list[dict[str, Any]] | None, wall: float | None,
          final_attempt_wall: float | None, assumptions: dict[str, Any], parameters: float | None, rl: bool,
          beta: float) -> dict[str, Any] | None:
    """{"startup_seconds", "io_seconds", "compute_seconds", "source", "note"}; the three add up to wall."""
    if wall is None:
        return None
    started, ended = parse_time(manifest.get("started_at")), parse_time(manifest.get("ended_at"))
    steps = {float(c["step"]) for c in manifest.get("checkpoints") or [] if is_number(c.get("step"))}
    found = measured(history or [], started, ended, steps) if started and ended and history else None
    if found and final_attempt_wall:
        parts = {key: found[key] for key in ("startup_seconds", "io_seconds")}
        if sum(parts.values()) > final_attempt_wall:  # the timestamps disagree with the manifest: trust neither
            found = None
    if found:
        source = "W&B timestamps" + (" and time/* keys" if "snapshot_saves_seconds" in found["details"] else "")
        note = "measured from the run's logged timestamps"
        scale = wall / final_attempt_wall if final_attempt_wall else 1.0
        if scale != 1.0:
            note += "; earlier attempts split in the final attempt's proportions"
        result = {"startup_seconds": found["startup_seconds"] * scale, "io_seconds": found["io_seconds"] * scale,
                  "source": source, "note": note, "details": found["details"]}
    else:
        result = {**planned(manifest, wall, assumptions, parameters, rl, beta), "source": "plan"}
    result["compute_seconds"] = wall - result["startup_seconds"] - result["io_seconds"]
    return result

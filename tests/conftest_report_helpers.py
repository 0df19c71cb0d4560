"""Builders for the report tests: real offline W&B runs and synthetic evaluation folders.

W&B runs are written by the wandb package itself (offline mode), never faked, so the reader is
tested against the real file format. Results JSONs are computed here with scipy directly, not with
the code under test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from sft_vs_rlvr.report import wandb_runs


def write_offline_run(
    wandb_root: Path,
    rows: list[dict[str, Any]],
    run_id: str,
    project: str = "sft-vs-rlvr-test",
    group: str | None = "test-group",
    config: dict[str, Any] | None = None,
    summary: dict[str, Any] | None = None,
) -> Path:
    """Log rows with the real wandb package in offline mode under WANDB_DIR=wandb_root; return the run folder."""
    import wandb

    wandb_root.mkdir(parents=True, exist_ok=True)
    with wandb_runs.offline_environment(wandb_root):
        run = wandb.init(project=project, group=group, id=run_id, config=config or {}, dir=str(wandb_root))
        for row in rows:
            if "_step" in row:  # the trainer's own step (finetune.py: accelerator.log(..., step=completed_steps))
                row = dict(row)
                run.log(row, step=row.pop("_step"))
            else:
                run.log(row)
        for key, value in (summary or {}).items():
            run.summary[key] = value
        run.finish()
        wandb.teardown()
    (run_dir,) = (wandb_root / "wandb").glob(f"offline-run-*-{run_id}")
    return run_dir


def trl_sft_rows(n_steps: int) -> list[dict[str, Any]]:
    """TRL SFTTrainer-style rows: loss every step, plus an end-of-training row without loss."""
    rows = [
        {"train/loss": 2.5 * 0.97**i + 0.01 * (i % 7), "train/learning_rate": 1e-4 * (1 - i / n_steps),
         "train/grad_norm": 1.0 + 0.1 * (i % 5), "train/global_step": i + 1}
        for i in range(n_steps)
    ]
    return rows + [{"train/train_runtime": 12.5, "train/global_step": n_steps}]


def trl_grpo_rows(n_steps: int) -> list[dict[str, Any]]:
    """TRL GRPOTrainer-style rows (reward, reward_std, kl, grad_norm, loss), one NaN kl to be dropped."""
    rows = []
    for i in range(n_steps):
        rows.append({
            "train/reward": min(1.0, 0.1 + 0.02 * i), "train/reward_std": 0.3 - 0.001 * i,
            "train/kl": float("nan") if i == 3 else 0.001 * i, "train/grad_norm": 0.5 + 0.01 * i,
            "train/loss": 0.01 * ((-1) ** i), "train/global_step": i + 1,
        })
    return rows


def _wilson(k: int, n: int) -> list[float]:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return [float(ci.low), float(ci.high)]


def make_samples(ids: list[str], p_correct: float, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Per-sample rows (FORMATS.md) with seeded random verdicts; the verifier disagrees now and then."""
    samples = []
    for problem in ids:
        correct = bool(rng.random() < p_correct)
        no_answer = (not correct) and bool(rng.random() < 0.2)
        verifier_correct = correct if rng.random() > 0.05 else not correct
        samples.append({
            "id": problem, "prompt": f"Q {problem}", "response": "#### 7", "gold": "7",
            "extracted": None if no_answer else ("7" if correct else "8"), "correct": correct,
            "verifier_extracted": "7" if verifier_correct else "8", "verifier_correct": verifier_correct,
            "truncated": bool(rng.random() < 0.1), "response_tokens": int(rng.integers(5, 40)),
        })
    return samples


def add_sampled(samples: list[dict[str, Any]], n: int, p_correct: float, rng: np.random.Generator) -> None:
    """Give every row n sampled completions (FORMATS.md `samples`) with varied answers and texts."""
    words = ["so", "then", "we", "add", "multiply", "the", "total", "is", "each", "costs", "left", "gives"]
    for row in samples:
        row["samples"] = []
        for _ in range(n):
            correct = bool(rng.random() < p_correct)
            answer = "7" if correct else str(int(rng.integers(1, 6)))
            text = " ".join(rng.choice(words, size=int(rng.integers(3, 12)))) + f" 3 + 4 = {answer}\n#### {answer}"
            no_answer = (not correct) and bool(rng.random() < 0.1)
            row["samples"].append({
                "response": text, "extracted": None if no_answer else answer, "correct": correct,
                "verifier_extracted": answer, "verifier_correct": correct,
                "truncated": bool(rng.random() < 0.05), "response_tokens": int(rng.integers(5, 60))})


def results_for(name: str, samples: list[dict[str, Any]], experiment_id: str) -> dict[str, Any]:
    """A results JSON consistent with its samples, as the evaluator would write it (rounded to 4 places)."""
    n = len(samples)
    graders = {}
    for grader, key in (("robust", "correct"), ("verifier", "verifier_correct")):
        k = sum(s[key] for s in samples)
        graders[grader] = {"correct": k, "accuracy": round(k / n, 4), "ci95": [round(x, 4) for x in _wilson(k, n)]}
    return {
        "format": "sft-vs-rlvr/eval-results", "version": 1, "experiment_id": experiment_id, "model_name": name,
        "model": {"path": f"/models/{name}", "fingerprint": f"sha-{name}", "template_source": "tokenizer"},
        "split": "test", "n": n, "decoding": {"strategy": "greedy", "max_new_tokens": 40, "stop": "eos"},
        "engine": "transformers", "dtype": "float32", "graders": graders, "headline_grader": "robust",
        "accuracy": graders["robust"]["accuracy"],
        "counts": {"n": n, "truncated": sum(s["truncated"] for s in samples),
                   "no_answer": sum(s["extracted"] is None for s in samples),
                   "grader_disagreements": sum(s["correct"] != s["verifier_correct"] for s in samples)},
        "mean_response_tokens": sum(s["response_tokens"] for s in samples) / n, "tokens_per_second": 100.0,
        "wall_seconds": 1.0, "samples_file": f"{name}_samples.jsonl", "created_at": "2026-11-26T22:00:00Z",
    }


def results_v2_for(name: str, samples: list[dict[str, Any]], experiment_id: str,
                   checkpoint: dict[str, Any] | None = None, fingerprints: dict[str, str] | None = None) -> dict[str, Any]:
    """Version 2 results, with the sampled summary as the evaluator computes it (evaluation._sampled_summary)."""
    from sft_vs_rlvr.evaluate import driver as evaluation

    results = results_for(name, samples, experiment_id)
    results.update(version=2, checkpoint=checkpoint,
                   settings_fingerprints=fingerprints or {"shared": "abc123", "eval": "eval-fp"})
    if samples and "samples" in samples[0]:
        results["sampled"] = evaluation._sampled_summary(samples)
    return results


def write_model_eval(eval_dir: Path, name: str, samples: list[dict[str, Any]], experiment_id: str) -> Path:
    eval_dir.mkdir(parents=True, exist_ok=True)
    (eval_dir / f"{name}_samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    path = eval_dir / f"{name}_results.json"
    path.write_text(json.dumps(results_for(name, samples, experiment_id), indent=2))
    return path


def write_v2_eval(eval_dir: Path, name: str, samples: list[dict[str, Any]], experiment_id: str, **kwargs) -> Path:
    eval_dir.mkdir(parents=True, exist_ok=True)
    (eval_dir / f"{name}_samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    path = eval_dir / f"{name}_results.json"
    path.write_text(json.dumps(results_v2_for(name, samples, experiment_id, **kwargs), indent=2))
    return path


SETTINGS = {
    "profile": "tiny",
    "shared": {"base_model": "tiny-llama-gsm", "seed": 42, "max_prompt_length": 96, "max_response_length": 64,
               "output_root": "runs", "dataset": "synthetic-gsm8k"},
    "sft": {"epochs": 2, "effective_batch_size": 16, "learning_rate": 0.003},
    "rlvr": {"epochs": 1, "prompts_per_step": 8, "samples_per_prompt": 4, "beta": 0.04, "learning_rate": 0.0005},
    "eval": {"samples": 4},
}


def write_manifest(stage_dir: Path, stage: str, experiment_id: str, run_id: str | None, mode: str = "offline",
                   **extra: Any) -> dict:
    """A minimal stage manifest naming a W&B run; extra keys (settings, host, checkpoints, ...) override."""
    manifest = {
        "format": "sft-vs-rlvr/manifest", "version": 1, "experiment_id": experiment_id, "stage": stage,
        "profile": "tiny", "settings_fingerprints": {"shared": "abc123", stage: f"{stage}-fp"},
        "command": ["python", "-m", f"sft_vs_rlvr.train_{stage}"], "command_line": f"python -m sft_vs_rlvr.train_{stage}",
        "repo_commit": "0123456789abcdef", "repo_dirty": False, "open_instruct_commit": None,
        "packages": {"torch": "2.13.0", "trl": "1.16.0"},
        "data": {"format": "sft-vs-rlvr/data", "version": 1, "files": {"test.jsonl": {"sha256": "feed", "rows": 50}}},
        "host": {"python": "3.11.7", "gpu": None, "gpu_count": 0},
        "started_at": "2026-11-26T21:00:00Z", "ended_at": "2026-11-26T21:05:00Z",
        "status": "completed", "exit_status": 0,
        "wandb": {"mode": mode, "project": "sft-vs-rlvr-test", "group": "test-group", "run_id": run_id,
                  "run_name": f"{stage}-run", "dir": "wandb", "url": None,
                  "sync_command": f"wandb sync {stage_dir}/wandb" if mode == "offline" else None},
        "final_model": "model", "checkpoints": [], "log": "train.log",
    }
    manifest.update(extra)
    stage_dir.mkdir(parents=True, exist_ok=True)
    (stage_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def build_experiment(root: Path, n_problems: int = 50, seed: int = 0, models: tuple[str, ...] = ("base", "sft", "rlvr"),
                     wandb_runs: bool = True, shuffled: tuple[str, ...] = ("rlvr",)) -> dict[str, Any]:
    """A complete synthetic experiment folder; returns what was written, for independent checks.

    Models in `shuffled` list their samples in a different order, so pairing must go by id.
    """
    experiment_id = "tiny-seed42"
    exp = root / experiment_id
    rng = np.random.default_rng(seed)
    ids = [f"test-{i:04d}" for i in range(n_problems)]
    p_correct = {"base": 0.2, "sft": 0.45, "rlvr": 0.6, "sft_step10": 0.3}
    samples = {name: make_samples(ids, p_correct.get(name, 0.4), rng) for name in models}
    for name in shuffled:
        if name in samples:
            samples[name] = [samples[name][i] for i in rng.permutation(n_problems)]
    for name, rows in samples.items():
        write_model_eval(exp / "eval", name, rows, experiment_id)
    logged = {}
    if wandb_runs:
        logged = {"sft": trl_sft_rows(40), "rlvr": trl_grpo_rows(30)}
        # SFT sets WANDB_DIR=<stage>/wandb (nested wandb/wandb/offline-run-*); RLVR sets WANDB_DIR=<stage>.
        write_offline_run(exp / "sft" / "wandb", logged["sft"], run_id="sftrun01")
        write_offline_run(exp / "rlvr", logged["rlvr"], run_id="rlvrrun1")
        write_manifest(exp / "sft", "sft", experiment_id, "sftrun01")
        write_manifest(exp / "rlvr", "rlvr", experiment_id, "rlvrrun1")
    return {"dir": exp, "samples": samples, "logged": logged, "ids": ids}


def build_full_experiment(root: Path, seed: int = 42, n_problems: int = 60, n_samples: int = 4,
                          models: tuple[str, ...] = ("base", "sft", "rlvr"), rng_seed: int | None = None,
                          p_correct: dict[str, float] | None = None, group: str | None = None) -> dict[str, Any]:
    """An experiment with every input the report reads: v2 results with sampled completions, checkpoint
    results, manifests with settings, GPUs and checkpoint indexes, experiment.json, and real offline W&B
    runs (TRL keys, with the cumulative token counter)."""
    experiment_id = f"tiny-seed{seed}"
    exp = root / experiment_id
    rng = np.random.default_rng(seed if rng_seed is None else rng_seed)
    ids = [f"test-{i:04d}" for i in range(n_problems)]
    p = p_correct or {"base": 0.2, "sft": 0.45, "rlvr": 0.6}
    samples = {}
    for name in models:
        samples[name] = make_samples(ids, p[name], rng)
        add_sampled(samples[name], n_samples, p[name] * 0.8, rng)
        write_v2_eval(exp / "eval", name, samples[name], experiment_id)
    checkpoints = {"sft": [(10, 160, 0.3), (20, 320, 0.4), (30, 480, 0.5)],
                   "rlvr": [(5, 40, 0.25), (10, 80, 0.5), (15, 120, 0.55)]}
    checkpoint_samples = {}
    for arm, points in checkpoints.items():
        if arm not in models:
            continue
        for step, examples, accuracy in points:
            name = f"{arm}_step{step}"
            checkpoint_samples[name] = make_samples(ids, accuracy, rng)
            write_v2_eval(exp / "eval", name, checkpoint_samples[name], experiment_id,
                          checkpoint={"arm": arm, "step": step, "examples_seen": examples, "kind": "hf_model"})
    settings = json.loads(json.dumps(SETTINGS))
    settings["shared"]["seed"] = seed
    data = {"format": "sft-vs-rlvr/data", "version": 1,
            "files": {"sft_train.jsonl": {"rows": 240, "sha256": "aa"}, "rl_train.jsonl": {"rows": 240, "sha256": "bb"},
                      "test.jsonl": {"rows": n_problems, "sha256": "feed"}}}
    logged = {
        "sft": [{"train/loss": 2.0 * 0.98 ** i, "train/learning_rate": 1e-4, "train/grad_norm": 1.0,
                 "train/num_tokens": 1000.0 * (i + 1), "train/global_step": i + 1} for i in range(30)],
        "rlvr": [{"train/reward": 0.1 + 0.02 * i, "train/reward_std": 0.3, "train/kl": 0.001 * i,
                  "train/entropy": 1.5 - 0.01 * i, "train/completions/mean_length": 40.0 + i,
                  "train/completions/clipped_ratio": 0.1, "train/loss": 0.01, "train/grad_norm": 0.5,
                  "train/num_tokens": 5000.0 * (i + 1), "train/global_step": i + 1} for i in range(30)],
    }
    times = {"sft": ("2026-11-26T21:00:00Z", "2026-11-26T21:30:00Z"),
             "rlvr": ("2026-11-26T22:00:00Z", "2026-11-26T23:30:00Z")}
    for stage in ("sft", "rlvr"):
        if stage not in models:
            continue
        run_id = f"{stage}run{seed}"
        write_offline_run(exp / stage / "wandb", logged[stage], run_id=run_id, group=group or experiment_id)
        write_manifest(exp / stage, stage, experiment_id, run_id, settings=settings, data=data,
                       host={"python": "3.11.7", "gpus": ["NVIDIA H100 80GB HBM3, 81559 MiB"] * 4, "num_nodes": 1},
                       started_at=times[stage][0], ended_at=times[stage][1],
                       checkpoints=[{"step": s, "examples_seen": e, "path": f"checkpoints/checkpoint-{s}"}
                                    for s, e, _ in checkpoints[stage]],
                       wandb={"mode": "offline", "project": "sft-vs-rlvr-test", "group": experiment_id,
                              "run_id": run_id, "run_name": f"{experiment_id}-{stage}", "dir": "wandb", "url": None,
                              "sync_command": None})
    (exp / "experiment.json").write_text(json.dumps({
        "format": "sft-vs-rlvr/experiment", "version": 1, "experiment_id": experiment_id, "profile": "tiny",
        "shared": settings["shared"], "shared_fingerprint": "abc123"}))
    return {"dir": exp, "samples": samples, "checkpoint_samples": checkpoint_samples, "checkpoints": checkpoints,
            "logged": logged, "ids": ids, "settings": settings, "times": times}


def iso(seconds: float) -> str:
    """A manifest's time format for seconds since the epoch."""
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def grpo_fast_rows(n_steps: int, start: float, rng: np.random.Generator, snapshot_every: int = 10,
                   learners: int = 2, eval_every: int = 5, solve_from: float = 0.1, solve_to: float = 0.3,
                   step_seconds: float = 30.0, post_log_seconds: float = 2.0, state_save_seconds: float = 50.0,
                   snapshot_seconds: float = 20.0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """open-instruct v0.3.0 grpo_fast rows (64 prompts x 8 samples, reward 1 or 0, beta 0: kl logged as 0.0),
    simulated group by group, and the ground truth of each step (true solve rate, groups kept, the times).

    Every reward key is computed over the groups the zero-variance filter keeps, as grpo_fast does, so the
    logged reward sits near 50% while the true solve rate climbs from solve_from to solve_to. _timestamp is
    set: the training loop starts at `start`; each step takes step_seconds (time/total), a snapshot step adds
    time/saving inside the step and a training-state save after logging."""
    rows, truth, clock, tokens = [], [], start, 0.0
    for step in range(1, n_steps + 1):
        p = solve_from + (solve_to - solve_from) * (step - 1) / max(1, n_steps - 1)
        correct = rng.binomial(8, rng.beta(p, 1 - p, size=64))  # prompts differ: many groups all right or all wrong
        kept = correct[(correct > 0) & (correct < 8)]
        saving = snapshot_seconds if step % snapshot_every == 0 else 0.0
        clock += step_seconds  # the step, snapshot included (time/total covers it)
        step_tokens = 8 * 64 * 120.0
        rate = tokens * learners / (clock - start) if step > 1 else 0.0
        row = {
            "training_step": step, "episode": step * 512, "_timestamp": clock,
            "scores": float(kept.mean() / 8), "objective/verifiable_reward": float(kept.mean() / 8),
            "objective/verifiable_correct_rate": float(kept.mean() / 8),
            "batch/percent_solved_mean": float(kept.mean() / 8),
            "batch/total_prompts": int(len(kept)), "val/total_reward_groups": int(len(kept)),
            "batch/filtered_prompts": int(64 - len(kept)), "batch/filtered_prompts_zero": int((correct == 0).sum()),
            "batch/filtered_prompts_solved": int((correct == 8).sum()), "batch/filtered_prompts_nonzero": 0,
            "objective/kl0_avg": 0.0, "objective/kl1_avg": 0.0, "loss/kl_avg": 0.0,  # beta 0: not measured
            "loss/policy_avg": float(rng.normal(0, 0.01)), "policy/entropy_avg": 0.6 - 0.002 * step,
            "val/sequence_lengths": 150.0 + step, "val/stop_rate": 0.9, "lr": 1e-6, "optim/grad_norm": 0.3,
            "val/num_total_tokens": tokens * learners, "learner_tokens_per_second_overall": rate,
            "time/total": step_seconds, "time/saving": saving, "time/training": step_seconds - saving,
        }
        if step == 1 or step % eval_every == 0:
            row.update({"eval/pass_at_1": p + 0.02, "eval/stop_rate": 0.95, "eval/sequence_lengths": 140.0})
        if step == 1:
            del row["learner_tokens_per_second_overall"]  # no rate before the first step's tokens
        rows.append(row)
        truth.append({"step": step, "solve_rate": float(correct.mean() / 8), "kept": int(len(kept)),
                      "survivor_rate": float(kept.mean() / 8)})
        tokens += step_tokens
        clock += post_log_seconds + (state_save_seconds if step % snapshot_every == 0 else 0.0)
    return rows, truth


def finetune_rows(n_steps: int, start: float, step_seconds: float = 10.0, checkpoint_every: int = 10,
                  save_seconds: float = 40.0) -> list[dict[str, Any]]:
    """open-instruct finetune.py rows (logging_steps 1) with _timestamp: a step every step_seconds, and a
    checkpoint save of save_seconds after logging each checkpoint step."""
    rows, clock = [], start
    for step in range(1, n_steps + 1):
        clock += step_seconds
        rows.append({"learning_rate": 5e-6 * (1 - step / n_steps), "train_loss": 1.0 / step, "total_tokens": 3000 * step,
                     "_timestamp": clock, "_step": step})
        if step % checkpoint_every == 0:
            clock += save_seconds
    return rows


def _numbers(value) -> list[float]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in _numbers(v)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    return []


def _strings(value) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return {value} if isinstance(value, str) else set()


def _markdown_cells(md: str) -> list[str]:
    """Body cells of every Markdown table but the first column (row labels: model, comparison, metric, field)."""
    lines = md.splitlines()
    body = [line for i, line in enumerate(lines)
            if line.startswith("| ") and not (i + 1 < len(lines) and lines[i + 1].startswith("|---"))]
    return [cell.strip() for row in body for cell in row.strip().strip("|").split(" | ")[1:]]


# Paragraphs written from the numbers (the findings, the headline's statement of what is held equal), and the
# fixed labels in them that are not figures ("95% CI", "section 8", "10^18").
NUMBER_PARAGRAPHS = ("## Findings", "## 1. Headline")
LABELS = re.compile(r"95% (?:CI|intervals)|section \d+|10\^18")


def _paragraphs(md: str) -> list[str]:
    """The text paragraphs of the sections in NUMBER_PARAGRAPHS (not their tables, figures or headings)."""
    out, keep = [], False
    for block in md.split("\n\n"):
        if block.startswith("#"):
            keep = block.startswith(NUMBER_PARAGRAPHS)
        elif keep and not block.startswith(("|", "![")):
            out.append(block)
    return out


def assert_table_numbers_in_json(md: str, data: dict) -> None:
    """Every number in a Markdown table cell (but the row labels), and in the findings and the headline's
    paragraphs, is a number of report.json, as formatted."""
    shown = set()
    for x in _numbers(data):
        shown |= {str(x), f"{x:.4g}", f"{x:.3g}", f"{x:.1f}", f"{100 * x:.1f}", f"{100 * x:+.1f}"}
    strings = _strings(data) | {"-", "null", "True", "False"}
    cells = [c for c in _markdown_cells(md) if c not in strings]
    assert len(cells) > 100, "table cells not parsed"
    paragraphs = _paragraphs(md)
    assert any(p.startswith("Caveats.") for p in paragraphs), "findings paragraphs not parsed"
    for cell in cells + [LABELS.sub("", p) for p in paragraphs]:
        for token in re.findall(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", cell):
            assert token in shown, f"{token!r} (cell {cell!r}) is not a number of report.json"

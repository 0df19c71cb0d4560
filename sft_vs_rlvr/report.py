"""Analysis report: evaluation results and training runs -> report.md, report.html, report.json.

Inputs (docs/FORMATS.md): eval/<model>_results.json with their per-sample JSONL files, the stage
manifests sft/manifest.json and rlvr/manifest.json, and the W&B runs those manifests name.
Accuracies are recomputed from the per-sample files and checked against the results files, so a
stale or hand-edited summary cannot reach the report. Every number shown in report.md and
report.html is in report.json. An absent input leaves its section with a note naming the fix;
no results at all is an error.

Command line (analyze_results.py calls main):
  python -m sft_vs_rlvr.report --experiment-dir <output_root>/<experiment id> [--out DIR]
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # never a GUI backend: the report runs on headless machines
import matplotlib.pyplot as plt  # noqa: E402

from . import atomic, weights, wandb_runs  # noqa: E402
from .errors import UserError, cli  # noqa: E402
from .stats import mcnemar_exact, paired_bootstrap_diff, wilson_interval  # noqa: E402
from .wandb_runs import CorruptRunFile, MissingInput  # noqa: E402

REPORT_FORMAT, REPORT_VERSION = "sft-vs-rlvr/report", 1
RESULTS_FORMAT, MANIFEST_FORMAT = "sft-vs-rlvr/eval-results", "sft-vs-rlvr/manifest"
KNOWN_VERSIONS = {RESULTS_FORMAT: {1, 2}, MANIFEST_FORMAT: {1}, "sft-vs-rlvr/reference-results": {1}}

MODEL_ORDER = ("base", "sft", "rlvr", "sft_rlvr")
OPTIONAL_MODELS = ("sft_rlvr",)  # the third arm (INIT_FROM=sft): reported when it was run, not missed otherwise
GRADERS = {"robust": "correct", "verifier": "verifier_correct"}  # grader -> per-sample verdict key
SAMPLE_KEYS = ("id", "correct", "verifier_correct", "extracted", "truncated", "response_tokens")
COMPARISONS = (("rlvr", "sft"), ("sft", "base"), ("rlvr", "base"), ("sft_rlvr", "sft"), ("sft_rlvr", "rlvr"))  # (a, b): accuracy of a minus b
BOOTSTRAP = {"n_boot": 10000, "seed": 42, "level": 0.95}
# Results files round their floats; a summary further off than half a unit in the third decimal is wrong.
FLOAT_TOLERANCE = 5.01e-4

EVAL_FIX = "run ./evaluate_comparison.sh"
STAGE_FIX = {"sft": "run ./experiment_sft_llama8b.sh", "rlvr": "run ./experiment_rlvr_llama8b.sh",
             "sft_rlvr": "run INIT_FROM=sft ./experiment_rlvr_llama8b.sh"}

# Training curves: each metric's W&B key differs by trainer; the first alias with data wins.
# TRL (tiny profile): train/*; open-instruct finetune.py: train_loss, learning_rate;
# open-instruct grpo_fast.py: objective/*, loss/*, optim/grad_norm, val/sequence_lengths.
METRIC_ALIASES = {
    "loss": ("train/loss", "train_loss", "loss/policy_avg"),
    "learning_rate": ("train/learning_rate", "learning_rate", "lr"),
    "grad_norm": ("train/grad_norm", "optim/grad_norm"),
    "reward": ("train/reward", "objective/verifiable_reward", "objective/scores", "scores"),
    "reward_std": ("train/reward_std",),
    "kl": ("train/kl", "objective/kl", "objective/kl_avg", "objective/kl0_avg"),
    "response_length": ("train/completions/mean_length", "val/sequence_lengths"),
}
STEP_KEYS = ("train/global_step", "training_step", "_step")  # first one present in the metric's rows
STAGE_METRICS = {
    "sft": ("loss", "learning_rate", "grad_norm"),
    "rlvr": ("reward", "reward_std", "kl", "loss", "grad_norm", "response_length"),
}
STAGE_METRICS["sft_rlvr"] = STAGE_METRICS["rlvr"]
STAGE_TITLES = {"sft": "SFT", "rlvr": "RLVR (GRPO)", "sft_rlvr": "SFT then RLVR"}


class InconsistentResults(UserError):
    """A results file that disagrees with its own per-sample file."""


# ----------------------------------------------------------------------------- reading inputs


def _read_json(path: Path, expected_format: str) -> dict[str, Any]:
    """Read a versioned JSON file; refuse an unknown format or version, naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read {path}: {error}") from error
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a JSON object: regenerate it with this version of the project")
    fmt, version = data.get("format"), data.get("version")
    if fmt != expected_format or version not in KNOWN_VERSIONS[expected_format]:
        raise UserError(
            f"{path} is format {fmt!r} version {version!r}; this report reads {expected_format!r} "
            f"version {sorted(KNOWN_VERSIONS[expected_format])}: regenerate it with this version of the project"
        )
    return data


def _read_samples(path: Path) -> list[dict[str, Any]]:
    try:
        samples = atomic.read_jsonl(path)
    except FileNotFoundError as error:
        raise InconsistentResults(f"{path} is missing but its results file names it: {EVAL_FIX}") from error
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSONL ({error}): {EVAL_FIX}") from error
    if not samples:
        raise InconsistentResults(f"{path} has no samples: {EVAL_FIX}")
    for line, sample in enumerate(samples, 1):
        absent = [key for key in SAMPLE_KEYS if key not in sample]
        if absent:
            raise UserError(f"{path} line {line} lacks {', '.join(absent)}: {EVAL_FIX}")
    ids = [sample["id"] for sample in samples]
    if len(set(ids)) != len(ids):
        raise InconsistentResults(f"{path} repeats problem ids: {EVAL_FIX}")
    return samples


def summarize_samples(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy per grader (with Wilson interval) and the counts, computed from per-sample verdicts."""
    n = len(samples)
    graders = {}
    for grader, key in GRADERS.items():
        correct = sum(bool(sample[key]) for sample in samples)
        graders[grader] = {"correct": correct, "accuracy": correct / n, "ci95": list(wilson_interval(correct, n))}
    counts = {
        "n": n,
        "truncated": sum(bool(sample["truncated"]) for sample in samples),
        "no_answer": sum(sample["extracted"] is None for sample in samples),
        "grader_disagreements": sum(bool(sample["correct"]) != bool(sample["verifier_correct"]) for sample in samples),
    }
    mean_tokens = sum(sample["response_tokens"] for sample in samples) / n
    return {"n": n, "graders": graders, "counts": counts, "mean_response_tokens": mean_tokens}


def _lookup(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _disagrees(claimed: Any, computed: Any) -> bool:
    if isinstance(computed, list):
        return not isinstance(claimed, list) or len(claimed) != len(computed) or any(map(_disagrees, claimed, computed))
    if isinstance(computed, float):
        return not isinstance(claimed, (int, float)) or abs(claimed - computed) > FLOAT_TOLERANCE
    return claimed != computed


def check_results(results: dict[str, Any], summary: dict[str, Any], results_path: Path, samples_path: Path) -> None:
    """Raise InconsistentResults listing every field of the results file its samples contradict."""
    headline = results.get("headline_grader")
    if headline not in GRADERS:
        raise UserError(f"{results_path}: unknown headline_grader {headline!r} (known: {', '.join(GRADERS)})")
    expected = {"n": summary["n"], "accuracy": summary["graders"][headline]["accuracy"]}
    expected.update({f"counts.{key}": value for key, value in summary["counts"].items()})
    for grader, values in summary["graders"].items():
        expected.update({f"graders.{grader}.{key}": value for key, value in values.items()})
    wrong = [
        f"{field} is {_lookup(results, field)!r} but the samples give {value!r}"
        for field, value in sorted(expected.items())
        if _disagrees(_lookup(results, field), value)
    ]
    if wrong:
        raise InconsistentResults(
            f"{results_path} disagrees with {samples_path.name}: {'; '.join(wrong)}; "
            f"re-run ./evaluate_comparison.sh for {results.get('model_name')}"
        )


def _results_files(eval_dir: Path) -> list[Path]:
    """eval/<model>_results.json, not the reference protocol's <model>_reference_results.json."""
    return sorted(p for p in eval_dir.glob("*_results.json") if not p.name.endswith("_reference_results.json"))


def load_models(eval_dir: Path) -> dict[str, dict[str, Any]]:
    """Every eval/<model>_results.json, checked against its samples file, keyed by model name."""
    models = {}
    for path in _results_files(eval_dir):
        name = path.name[: -len("_results.json")]
        results = _read_json(path, RESULTS_FORMAT)
        if results.get("checkpoint"):
            continue  # intermediate checkpoints: load_checkpoints
        if results.get("model_name") != name:
            raise InconsistentResults(
                f"{path} says model_name {results.get('model_name')!r}, expected {name!r}: {EVAL_FIX} for {name}"
            )
        samples_path = eval_dir / results.get("samples_file", f"{name}_samples.jsonl")
        samples = _read_samples(samples_path)
        summary = summarize_samples(samples)
        check_results(results, summary, path, samples_path)
        models[name] = {
            "name": name,
            "experiment_id": results.get("experiment_id"),
            "results_file": f"eval/{path.name}",
            "samples_file": f"eval/{samples_path.name}",
            "headline_grader": results["headline_grader"],
            "model_fingerprint": _lookup(results, "model.fingerprint"),
            **summary,
            # per-problem verdicts for the paired comparisons; left out of report.json
            "_verdicts": {grader: {s["id"]: bool(s[key]) for s in samples} for grader, key in GRADERS.items()},
        }
    return models


def load_checkpoints(eval_dir: Path) -> list[dict[str, Any]]:
    """Greedy accuracy of every evaluated intermediate checkpoint, by arm and step."""
    points = []
    for path in _results_files(eval_dir):
        results = _read_json(path, RESULTS_FORMAT)
        checkpoint = results.get("checkpoint")
        if checkpoint:
            points.append({"name": results["model_name"], **checkpoint, "results_file": f"eval/{path.name}",
                           **{f"accuracy_{g}": results["graders"][g]["accuracy"] for g in GRADERS}})
    return sorted(points, key=lambda p: (p["arm"], p["step"]))


# Other people's numbers for the reference protocol (GSM8K, 8-shot chain of thought), shown beside ours and
# labelled as such (anchors.md section 1.1). Protocols differ in detail (exemplar rendering, generation length).
PUBLISHED_ANCHORS = (
    ("Llama-3.1-8B base", 56.6, "8-shot CoT, exact match; Lin et al., arXiv 2503.20110, Table 1"),
    ("Tulu 3 8B SFT", 76.2, "same table"),
    ("Tulu 3.1 8B (GRPO)", 89.9, "same table"),
    ("Llama-3.1-8B-Instruct, lm-eval gsm8k 8-shot", 77.79, "flexible-extract; huggingface.co/meta-llama/"
     "Llama-3.1-8B-Instruct/discussions/81"),
)


def load_ood(eval_dir: Path, models: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Accuracy on each out-of-distribution set (eval/ood/<set>/), and the drop from the same model's GSM8K
    accuracy with an unpaired normal-approximation 95% interval (different problems, so no pairing)."""
    rows = []
    for path in sorted((eval_dir / "ood").glob("*/*_results.json")):
        results = _read_json(path, RESULTS_FORMAT)
        name, grader = results["model_name"], results["headline_grader"]
        accuracy, n = results["graders"][grader]["accuracy"], results["n"]
        entry = {"set": path.parent.name, "model": name, "n": n, "grader": grader, "accuracy": accuracy,
                 "ci95": results["graders"][grader]["ci95"], "results_file": f"eval/{path.relative_to(eval_dir)}",
                 "dropped_non_numeric": (results.get("dataset") or {}).get("dropped_non_numeric")}
        if name in models:
            base_accuracy = models[name]["graders"][grader]["accuracy"]
            base_n = models[name]["n"]
            spread = 1.96 * ((accuracy * (1 - accuracy) / n) + (base_accuracy * (1 - base_accuracy) / base_n)) ** 0.5
            drop = base_accuracy - accuracy
            entry.update(gsm8k_accuracy=base_accuracy, drop=drop, drop_ci95=[drop - spread, drop + spread])
        rows.append(entry)
    return rows


def load_reference(eval_dir: Path) -> list[dict[str, Any]]:
    """The reference protocol's results (lm-eval gsm8k_cot), one entry per model, in model order."""
    found = {}
    for path in sorted(eval_dir.glob("*_reference_results.json")):
        results = _read_json(path, "sft-vs-rlvr/reference-results")
        found[results["model_name"]] = {
            "name": results["model_name"], "results_file": f"eval/{path.name}", "n": results["n"],
            "limit": results.get("limit"), "lm_eval_version": results.get("lm_eval_version"),
            "metrics": results["metrics"]}
    return [found[name] for name in model_order(list(found))]


def model_order(names: list[str]) -> list[str]:
    """base, sft, rlvr first, then the others (checkpoints, later arms) alphabetically."""
    return [name for name in MODEL_ORDER if name in names] + sorted(set(names) - set(MODEL_ORDER))


# ----------------------------------------------------------------------------- analysis


def compare(a: dict[str, Any], b: dict[str, Any], grader: str) -> dict[str, Any]:
    """Paired comparison of model a against b on the problems both were evaluated on (matched by id)."""
    verdicts_a, verdicts_b = a["_verdicts"][grader], b["_verdicts"][grader]
    common = [problem for problem in verdicts_a if problem in verdicts_b]
    if not common:
        raise MissingInput(f"{a['name']} and {b['name']} share no problem ids")
    va, vb = [verdicts_a[i] for i in common], [verdicts_b[i] for i in common]
    table = {
        "both_correct": sum(x and y for x, y in zip(va, vb)),
        "a_only": sum(x and not y for x, y in zip(va, vb)),
        "b_only": sum(y and not x for x, y in zip(va, vb)),
        "neither": sum(not x and not y for x, y in zip(va, vb)),
    }
    difference, lo, hi = paired_bootstrap_diff(
        va, vb, n_boot=BOOTSTRAP["n_boot"], seed=BOOTSTRAP["seed"], level=BOOTSTRAP["level"]
    )
    return {
        "a": a["name"],
        "b": b["name"],
        "grader": grader,
        "n_paired": len(common),
        "unpaired": {"a_only_ids": len(verdicts_a) - len(common), "b_only_ids": len(verdicts_b) - len(common)},
        "accuracy_a": sum(va) / len(va),
        "accuracy_b": sum(vb) / len(vb),
        "difference": difference,
        "bootstrap_ci95": [lo, hi],
        "mcnemar_p": mcnemar_exact(table["a_only"], table["b_only"]),
        "table": table,
    }


def extract_metrics(stage: str, history: list[dict[str, Any]]) -> dict[str, Any]:
    """The stage's curves from a W&B history, each under the first alias that has data."""
    metrics = {}
    for metric in STAGE_METRICS[stage]:
        for key in METRIC_ALIASES[metric]:
            rows = [row for row in history if key in row]
            step_key = next((s for s in STEP_KEYS if any(s in row for row in rows)), None)
            points = wandb_runs.series(rows, key, step_key) if step_key else []
            if points:
                values = [value for _, value in points]
                metrics[metric] = {
                    "key": key,
                    "step_key": step_key,
                    "points": points,
                    "n_points": len(points),
                    "first": points[0],
                    "last": points[-1],
                    "min": min(values),
                    "max": max(values),
                }
                break
    return metrics


def load_stage(experiment_dir: Path, stage: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(manifest or None, dynamics) for one training stage; dynamics holds "missing" when absent."""
    path = experiment_dir / stage / "manifest.json"
    if not path.exists():
        return None, {"missing": f"no {stage}/manifest.json: {STAGE_FIX[stage]}"}
    manifest = _read_json(path, MANIFEST_FORMAT)
    info = manifest.get("wandb") or {}
    source = {key: info.get(key) for key in ("mode", "project", "group", "run_id", "url")}
    try:
        history = wandb_runs.history_for_manifest(path.parent, manifest)
    except (MissingInput, CorruptRunFile) as error:
        return manifest, {"source": source, "missing": f"no W&B history for {stage}: {error}"}
    metrics = extract_metrics(stage, history)
    if not metrics:
        wanted = sorted({key for metric in STAGE_METRICS[stage] for key in METRIC_ALIASES[metric]})
        return manifest, {"source": source, "missing": f"the {stage} W&B run has none of {', '.join(wanted)}"}
    return manifest, {"source": source, "metrics": metrics}


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested dict -> {"a.b": "text"}: the data and host blocks have no fixed schema here."""
    if isinstance(value, dict):
        flat: dict[str, str] = {}
        for key in sorted(value):
            flat.update(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value if isinstance(value, str) else json.dumps(value, sort_keys=True)}


MANIFEST_FIELDS = ("experiment_id", "profile", "status", "exit_status", "started_at", "ended_at", "repo_commit",
                   "repo_dirty", "open_instruct_commit", "command_line")
WANDB_FIELDS = ("mode", "project", "group", "run_id", "run_name", "url", "sync_command")


def reproducibility(manifest: dict[str, Any], stage: str) -> dict[str, Any]:
    """What a reader needs to rerun or audit a stage, copied from its manifest."""
    info = manifest.get("wandb") or {}
    return {
        "manifest_file": f"{stage}/manifest.json",
        **{key: manifest.get(key) for key in MANIFEST_FIELDS},
        "settings_fingerprints": manifest.get("settings_fingerprints") or {},
        "packages": {name: str(version) for name, version in sorted((manifest.get("packages") or {}).items())},
        "data": _flatten(manifest.get("data") or {}),
        "host": _flatten(manifest.get("host") or {}),
        "wandb": {key: info.get(key) for key in WANDB_FIELDS},
    }


def _same(manifests: dict[str, dict[str, Any]], getter) -> bool | None:
    if "sft" not in manifests or "rlvr" not in manifests:
        return None
    return getter(manifests["sft"]) == getter(manifests["rlvr"])


def analyze(experiment_dir: Path) -> dict[str, Any]:
    """Everything the report shows, as one JSON-ready dict (report.json less its figure list)."""
    eval_dir = experiment_dir / "eval"
    models = load_models(eval_dir)
    if not models:
        raise UserError(f"no evaluation results (eval/*_results.json) in {experiment_dir}: {EVAL_FIX} first")
    missing = [f"no eval/{name}_results.json: {EVAL_FIX}" for name in MODEL_ORDER
               if name not in models and name not in OPTIONAL_MODELS]
    comparisons = []
    for a, b in COMPARISONS:
        absent = [name for name in (a, b) if name not in models]
        if absent and set(absent) <= set(OPTIONAL_MODELS):
            continue
        if absent:
            missing.append(f"{a} - {b} comparison needs eval/{absent[0]}_results.json: {EVAL_FIX}")
            continue
        for grader in GRADERS:
            try:
                comparisons.append(compare(models[a], models[b], grader))
            except MissingInput as error:
                missing.append(f"{a} - {b} comparison: {error}")
                break
    dynamics, manifests = {}, {}
    stages = ("sft", "rlvr", "sft_rlvr") if (experiment_dir / "sft_rlvr").is_dir() else ("sft", "rlvr")
    for stage in stages:
        manifest, dynamics[stage] = load_stage(experiment_dir, stage)
        if manifest is not None:
            manifests[stage] = manifest
        if "missing" in dynamics[stage]:
            missing.append(dynamics[stage]["missing"])
    ids = {m["experiment_id"] for m in models.values()} | {m.get("experiment_id") for m in manifests.values()}
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "experiment_ids": sorted(str(i) for i in ids if i is not None),
        "models": [{k: v for k, v in models[name].items() if k != "_verdicts"} for name in model_order(list(models))],
        "comparisons": comparisons,
        "bootstrap": dict(BOOTSTRAP),
        "dynamics": dynamics,
        "checkpoints": load_checkpoints(eval_dir),
        "ood": load_ood(eval_dir, models),
        "weights": weights.load(experiment_dir),
        "reference": {"ours": load_reference(eval_dir),
                      "published": [{"model": m, "gsm8k_8shot_cot": v, "source": src} for m, v, src in PUBLISHED_ANCHORS]},
        "reproducibility": {
            "stages": {stage: reproducibility(manifest, stage) for stage, manifest in manifests.items()},
            "same_data": _same(manifests, lambda m: m.get("data")),
            "same_shared_settings": _same(manifests, lambda m: (m.get("settings_fingerprints") or {}).get("shared")),
        },
        "missing": missing,
    }


# ----------------------------------------------------------------------------- figures


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})  # no version stamp: stable bytes
    plt.close(fig)
    return buffer.getvalue()


def plot_accuracy(models: list[dict[str, Any]]) -> bytes:
    """Grouped bars: accuracy per model and grader, with Wilson 95% intervals as error bars."""
    fig, ax = plt.subplots(figsize=(1.6 * len(models) + 2.5, 3.6))
    width = 0.8 / len(GRADERS)
    for offset, grader in enumerate(GRADERS):
        xs = [i + (offset - (len(GRADERS) - 1) / 2) * width for i in range(len(models))]
        accs = [100 * m["graders"][grader]["accuracy"] for m in models]
        errs = [[a - 100 * m["graders"][grader]["ci95"][0] for a, m in zip(accs, models)],
                [100 * m["graders"][grader]["ci95"][1] - a for a, m in zip(accs, models)]]
        ax.bar(xs, accs, width, yerr=errs, capsize=3, label=grader)
    ax.set_xticks(range(len(models)), [m["name"] for m in models])
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Test accuracy, 95% Wilson intervals")
    ax.legend()
    fig.tight_layout()
    return _png(fig)


def plot_curves(title: str, metrics: dict[str, Any]) -> bytes:
    """One small panel per training metric against its step."""
    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3 * nrows), squeeze=False)
    for ax, (metric, curve) in zip(axes.flat, metrics.items()):
        ax.plot([s for s, _ in curve["points"]], [v for _, v in curve["points"]], linewidth=1.2)
        ax.set_title(f"{metric} ({curve['key']})", fontsize=9)
        ax.set_xlabel(curve["step_key"], fontsize=8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)


def plot_weights(by_layer: dict[str, Any], arms: list[str]) -> bytes:
    """Per layer: relative update norm, share of entries changed, and mean effective rank, one line per arm."""
    layers = sorted(by_layer, key=int)
    panels = (("rel_norm", "relative update norm"), ("changed_fraction", "entries changed"),
              ("mean_effective_rank", "effective rank of the update"))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, (key, title) in zip(axes, panels):
        for arm in arms:
            values = [by_layer[layer]["arms"].get(arm, {}).get(key) for layer in layers]
            ax.plot([int(layer) for layer in layers], [v if v is not None else float("nan") for v in values],
                    marker="o", markersize=3, linewidth=1.2, label=arm)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("layer", fontsize=8)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


# ----------------------------------------------------------------------------- document


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _interval(ci: list[float]) -> str:
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _num(x: Any) -> str:
    if x is None:
        return "-"
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _point(point: list[float]) -> str:
    return f"{_num(point[1])} @ {_num(point[0])}"


def build_document(report: dict[str, Any]) -> tuple[list[tuple], dict[str, bytes]]:
    """Blocks ("h1"|"h2"|"h3"|"p", text), ("table", headers, rows), ("figure", file, caption) and the PNGs."""
    blocks: list[tuple] = [("h1", "SFT vs RLVR on GSM8K"),
                           ("p", f"Experiment: {', '.join(report['experiment_ids']) or 'unknown'}.")]
    figures: dict[str, bytes] = {}
    if report["missing"]:
        blocks += [("h2", "Missing inputs")] + [("p", f"Missing: {note}") for note in report["missing"]]

    models = report["models"]
    blocks.append(("h2", "1. Accuracy (greedy pass@1, test split)"))
    blocks.append(("table", ["model", "n", "robust", "robust 95% CI", "verifier", "verifier 95% CI", "headline",
                             "truncated", "no answer", "grader disagreements", "mean response tokens"],
                   [[m["name"], str(m["n"]), _pct(m["graders"]["robust"]["accuracy"]),
                     _interval(m["graders"]["robust"]["ci95"]), _pct(m["graders"]["verifier"]["accuracy"]),
                     _interval(m["graders"]["verifier"]["ci95"]), m["headline_grader"],
                     str(m["counts"]["truncated"]), str(m["counts"]["no_answer"]),
                     str(m["counts"]["grader_disagreements"]), f"{m['mean_response_tokens']:.1f}"] for m in models]))
    figures["accuracy.png"] = plot_accuracy(models)
    blocks.append(("figure", "accuracy.png", "Accuracy per model and grader with 95% Wilson intervals"))

    boot = report["bootstrap"]
    blocks.append(("h2", "2. Paired comparisons"))
    blocks.append(("p", f"Difference = accuracy of the first model minus the second, on the problems both were "
                        f"evaluated on (matched by id). Interval: paired bootstrap, {boot['n_boot']} resamples, "
                        f"seed {boot['seed']}, percentile {int(100 * boot['level'])}%. p: exact two-sided McNemar "
                        f"test on the problems exactly one model solved."))
    if report["comparisons"]:
        blocks.append(("table", ["comparison", "grader", "n paired", "first", "second", "difference",
                                 "bootstrap 95% CI", "McNemar p", "both correct", "only first", "only second",
                                 "neither"],
                       [[f"{c['a']} - {c['b']}", c["grader"], str(c["n_paired"]), _pct(c["accuracy_a"]),
                         _pct(c["accuracy_b"]), f"{100 * c['difference']:+.1f} pp", _interval(c["bootstrap_ci95"]),
                         f"{c['mcnemar_p']:.3g}", str(c["table"]["both_correct"]), str(c["table"]["a_only"]),
                         str(c["table"]["b_only"]), str(c["table"]["neither"])] for c in report["comparisons"]]))
        for c in report["comparisons"]:
            if c["unpaired"]["a_only_ids"] or c["unpaired"]["b_only_ids"]:
                blocks.append(("p", f"Warning: {c['a']} - {c['b']} ({c['grader']}): {c['unpaired']['a_only_ids']} "
                                    f"problems only in {c['a']}, {c['unpaired']['b_only_ids']} only in {c['b']} "
                                    f"were left out of the pairing."))
    else:
        blocks.append(("p", "No comparison possible: see the missing inputs above."))

    reference = report.get("reference") or {}
    if reference.get("ours"):
        blocks.append(("h3", "Reference protocol: lm-eval gsm8k_cot, 8-shot, no chat template"))
        blocks.append(("p", "Plain few-shot text, the same for every model, comparable with published numbers; "
                            "out of the trained models' own format, so not the headline."))
        blocks.append(("table", ["model", "problems", "strict-match", "flexible-extract", "lm-eval"],
                       [[r["name"], str(r["n"]), _pct(r["metrics"]["strict-match"]["exact_match"]),
                         _pct(r["metrics"]["flexible-extract"]["exact_match"]), str(r["lm_eval_version"])]
                        for r in reference["ours"]]))
        blocks.append(("p", "Other people's numbers (not measured here): " + "; ".join(
            f"{a['model']} {a['gsm8k_8shot_cot']:.1f}% ({a['source']})" for a in reference["published"]) + "."))
    if report.get("ood"):
        blocks.append(("h3", "Robustness: out-of-distribution sets (greedy)"))
        blocks.append(("table", ["set", "model", "problems", "accuracy", "95% CI", "GSM8K test", "drop",
                                 "drop 95% CI (unpaired)"],
                       [[o["set"], o["model"], str(o["n"]), _pct(o["accuracy"]), _interval(o["ci95"]),
                         _pct(o["gsm8k_accuracy"]) if "drop" in o else "-",
                         f"{100 * o['drop']:+.1f} pp" if "drop" in o else "-",
                         _interval(o["drop_ci95"]) if "drop" in o else "-"] for o in report["ood"]]))
    if report.get("checkpoints"):
        blocks.append(("h3", "Intermediate checkpoints (greedy)"))
        blocks.append(("table", ["arm", "step", "examples seen", "accuracy (robust)", "accuracy (verifier)"],
                       [[c["arm"], str(c["step"]), str(c["examples_seen"]), _pct(c["accuracy_robust"]),
                         _pct(c["accuracy_verifier"])] for c in report["checkpoints"]]))

    blocks += _weights_blocks(report.get("weights"), figures)

    blocks.append(("h2", "3. Learning dynamics"))
    for stage, dynamics in report["dynamics"].items():
        blocks.append(("h3", STAGE_TITLES[stage]))
        source = dynamics.get("source") or {}
        if source:
            blocks.append(("p", f"W&B run {source.get('run_id')} ({source.get('mode')}, project "
                                f"{source.get('project')}, group {source.get('group')})."))
        if "missing" in dynamics:
            blocks.append(("p", f"Missing: {dynamics['missing']}"))
            continue
        blocks.append(("table", ["metric", "W&B key", "step key", "points", "first (value @ step)",
                                 "last (value @ step)", "min", "max"],
                       [[metric, c["key"], c["step_key"], str(c["n_points"]), _point(c["first"]), _point(c["last"]),
                         _num(c["min"]), _num(c["max"])] for metric, c in dynamics["metrics"].items()]))
        figures[f"{stage}_dynamics.png"] = plot_curves(STAGE_TITLES[stage], dynamics["metrics"])
        blocks.append(("figure", f"{stage}_dynamics.png", f"{STAGE_TITLES[stage]} training curves from W&B"))

    blocks += _reproducibility_blocks(report["reproducibility"])
    return blocks, figures


def _weights_blocks(result: dict[str, Any] | None, figures: dict[str, bytes]) -> list[tuple]:
    """Where in the network each method learns: update size, sparsity, rank and agreement by kind of tensor."""
    if not result:
        return [("h3", "Where in the network each method learns"),
                ("p", "Not computed: run `python analyze_results.py --weights`.")]
    arms = list(result["meta"]["arms"])
    pairs = sorted({key for group in result["by_kind"].values() for key in group["pairs"]})
    header = ["kind", "tensors"] + [f"{arm} {m}" for arm in arms for m in ("rel. norm", "changed", "eff. rank")] \
        + [f"cosine {p}" for p in pairs] + [f"overlap {p}" for p in pairs]
    rows = []
    for kind, group in [*result["by_kind"].items(), ("all", result["overall"])]:
        row = [kind, str(group["n_tensors"])]
        for arm in arms:
            a = group["arms"].get(arm, {})
            rank = a.get("mean_effective_rank")
            row += [f"{a.get('rel_norm', float('nan')):.3g}", _pct(a.get("changed_fraction", float("nan"))),
                    f"{rank:.1f}" if rank is not None else "-"]
        for p in pairs:
            row.append(f"{group['pairs'][p]['cosine']:.3f}" if p in group["pairs"] else "-")
        for p in pairs:
            row.append(_pct(group["pairs"][p]["overlap_coefficient"]) if p in group["pairs"] else "-")
        rows.append(row)
    figures["weights_by_layer.png"] = plot_weights(result["by_layer"], arms)
    meta = result["meta"]
    return [
        ("h3", "Where in the network each method learns"),
        ("p", f"Each arm's final weights against the base, tensor by tensor (weights/weight_diff.json). "
              f"Relative norm = ||W_arm - W_base|| / ||W_base|| over the group. Changed: {meta['threshold']}. "
              f"Eff. rank: mean over the group's matrices of the {meta['effective_rank']}. "
              f"Cosine and overlap: {meta['pairs']}."),
        ("table", header, rows),
        ("figure", "weights_by_layer.png", "Per layer: relative update norm, share of entries changed, effective rank"),
        *[("p", f"Note: {note}") for note in meta.get("notes", [])],
    ]


def _reproducibility_blocks(repro: dict[str, Any]) -> list[tuple]:
    blocks: list[tuple] = [("h2", "4. Reproducibility")]
    if not repro["stages"]:
        return blocks + [("p", "No stage manifests found.")]
    if repro["same_data"] is not None:
        yes_no = {True: "yes", False: "NO"}
        blocks.append(("p", f"Same prepared data in both stages: {yes_no[repro['same_data']]}. Same shared "
                            f"settings fingerprint: {yes_no[repro['same_shared_settings']]}."))
    for stage, info in repro["stages"].items():
        blocks.append(("h3", f"{STAGE_TITLES[stage]} ({info['manifest_file']})"))
        rows = [[key, _num(info[key])] for key in MANIFEST_FIELDS]
        rows += [[f"settings fingerprint {k}", str(v)] for k, v in sorted(info["settings_fingerprints"].items())]
        rows += [[f"wandb {k}", _num(v)] for k, v in info["wandb"].items()]
        rows += [[f"package {k}", v] for k, v in info["packages"].items()]
        rows += [[f"data {k}", v] for k, v in info["data"].items()]
        rows += [[f"host {k}", v] for k, v in info["host"].items()]
        blocks.append(("table", ["field", "value"], rows))
    return blocks


def render_markdown(blocks: list[tuple]) -> str:
    out = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append(f"{'#' * int(kind[1])} {rest[0]}")
        elif kind == "p":
            out.append(rest[0])
        elif kind == "table":
            headers, rows = rest
            cell = lambda text: str(text).replace("|", "\\|").replace("\n", " ")  # noqa: E731
            out.append("\n".join(["| " + " | ".join(map(cell, headers)) + " |",
                                  "|" + "---|" * len(headers)]
                                 + ["| " + " | ".join(map(cell, row)) + " |" for row in rows]))
        elif kind == "figure":
            out.append(f"![{rest[1]}](figures/{rest[0]})")
    return "\n\n".join(out) + "\n"


HTML_STYLE = (
    "body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}"
    "th{background:#f2f2f2}img{max-width:100%}"
)


def render_html(blocks: list[tuple], figures: dict[str, bytes]) -> str:
    """Self-contained HTML: inline style, figures as data: URIs, no external references."""
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{esc(blocks[0][1])}</title><style>{HTML_STYLE}</style></head><body>"]
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3", "p"):
            out.append(f"<{kind}>{esc(rest[0])}</{kind}>")
        elif kind == "table":
            headers, rows = rest
            out.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in rows)
                       + "</table>")
        elif kind == "figure":
            data = base64.b64encode(figures[rest[0]]).decode("ascii")
            out.append(f'<figure><img src="data:image/png;base64,{data}" alt="{esc(rest[1])}">'
                       f"<figcaption>{esc(rest[1])}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- entry point


def build_report(experiment_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Analyze one experiment folder and write the report files; returns the path of report.md."""
    experiment_dir = Path(experiment_dir)
    if not experiment_dir.is_dir():
        raise UserError(f"experiment folder {experiment_dir} does not exist: pass --experiment-dir <output_root>/<id>")
    out_dir = Path(out_dir) if out_dir is not None else experiment_dir / "report"
    report = analyze(experiment_dir)
    blocks, figures = build_document(report)
    report["figures"] = [f"figures/{name}" for name in sorted(figures)]
    for name, png in figures.items():
        atomic.write_bytes(out_dir / "figures" / name, png)
    atomic.write_json(out_dir / "report.json", report)
    atomic.write_text(out_dir / "report.html", render_html(blocks, figures))
    return atomic.write_text(out_dir / "report.md", render_markdown(blocks))


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write report.md, report.html and report.json for one experiment.")
    parser.add_argument("--experiment-dir", required=True, type=Path, help="<output_root>/<experiment id>")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <experiment-dir>/report)")
    args = parser.parse_args(argv)
    print(build_report(args.experiment_dir, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

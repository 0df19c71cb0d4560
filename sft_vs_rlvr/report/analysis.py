"""Analysis report: evaluation results and training runs -> report.md, report.html, report.json.

Reads one experiment folder, or several seeds of one experiment (seeds.py), and nothing else: the
evaluation outputs (eval/<model>_results.json and their per-sample files, checkpoints, OOD sets, the
reference protocol), the stage manifests and the W&B runs they name, and weights/weight_diff.json when
`--weights` wrote it. Every number is recomputed from the per-sample files and checked against the results
files, so a stale or hand-edited summary cannot reach the report. Every number shown in report.md and
report.html is in report.json. An absent input leaves its section with a note naming the fix; no results
at all, or inputs that contradict each other, are an error naming the file, and nothing is written.

Sections, and the module that computes each (libraries: scipy for tests and intervals, numpy for the
bootstrap, matplotlib for figures, the wandb package for run files and its API for online runs):
  findings: the claims the numbers back, and the caveats                     findings.py
  1 headline accuracy, paired tests, reference protocol, published anchors;  this module, stats.py,
    what is held equal; still improving? per arm                            verdict.py
  2 budgets beside results (exposure, optimization, compute, time split)    budgets.py, wall_clock.py
  3 learning dynamics (the RL arms' unbiased signals)                       dynamics.py, rl_signals.py,
                                                                            wandb_runs.py
  4 sample efficiency from checkpoints                                      efficiency.py
  5 solution diversity (pass@k, maj@k, distinct answers, n-grams, lengths)  diversity.py, passk.py
  6 error patterns                                                          error_patterns.py
  7 robustness (out-of-distribution sets)                                   this module
  8 several seeds                                                           seeds.py
  9 reproducibility                                                         this module
  where in the network each method learns (--weights)                       weights/compare_arms.py, diff.py
Rendering (Markdown, self-contained HTML, figures): document.py, figures.py. pandas is not
used: every table here is a short list of rows built once, and plain dicts keep report.json's shape explicit.

Command line (analyze_results.py calls main):
  python -m sft_vs_rlvr.report.analysis --experiment-dir DIR [--experiment-dir DIR2 ...] [--out DIR] [--target-accuracy X]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
from pathlib import Path
from typing import Any

from sft_vs_rlvr import atomic, contract
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.errors import UserError, cli
from sft_vs_rlvr.launch import plan
from sft_vs_rlvr.report import budgets, diversity, dynamics, efficiency, error_patterns, findings, seeds, verdict
from sft_vs_rlvr.report.reproducibility import reproducibility
from sft_vs_rlvr.report.wandb_runs import MissingInput
from sft_vs_rlvr.stats import mcnemar_exact, paired_bootstrap_diff, wilson_interval
from sft_vs_rlvr.weights import compare_arms as weights

GRADERS = {"robust": "correct", "verifier": "verifier_correct"}  # grader -> per-sample verdict key
SAMPLE_KEYS = ("id", "correct", "verifier_correct", "extracted", "truncated", "response_tokens")
# (a, b): accuracy of a minus b; every pair of the models the README promises, the third arm's when it ran
COMPARISONS = (("rlvr", "sft"), ("sft", "base"), ("rlvr", "base"), ("sft_rlvr", "sft"), ("sft_rlvr", "rlvr"),
               ("sft_rlvr", "base"))
SOLVE_SETS = (("rlvr", "sft"), ("sft_rlvr", "sft"), ("sft_rlvr", "rlvr"))
BOOTSTRAP = {"n_boot": 10000, "seed": 42, "level": 0.95}
# Results files round their floats; a summary further off than half a unit in the third decimal is wrong.
FLOAT_TOLERANCE = 5.01e-4

EVAL_FIX = f"run {contract.EVALUATE}"


class InconsistentResults(UserError):
    """A results file that disagrees with its own per-sample file."""


# ----------------------------------------------------------------------------- reading inputs


def _read_json(path: Path, expected: contract.Format) -> dict[str, Any]:
    """Read a versioned JSON file; refuse an unknown format or version, naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read {path}: {error}") from error
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a JSON object: regenerate it with this version of the project")
    fmt, version = data.get("format"), data.get("version")
    if fmt != expected.id or version not in expected.readable:
        raise UserError(
            f"{path} is format {fmt!r} version {version!r}; this report reads {expected.id!r} "
            f"version {list(expected.readable)}: regenerate it with this version of the project"
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


def read_results(eval_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every eval/<model>_results.json (not the reference protocol's <model>_reference_results.json), read once."""
    paths = sorted(p for p in eval_dir.glob("*_results.json") if not p.name.endswith("_reference_results.json"))
    return [(path, _read_json(path, contract.EVAL_RESULTS)) for path in paths]


def _load_evaluated(path: Path, results: dict[str, Any], fingerprints: dict[str, Any]) -> dict[str, Any]:
    """One results file with its per-sample rows, checked against each other and against the experiment's
    settings version; returns {"results", "rows", "summary", "samples_path"}."""
    name = results.get("model_name")
    if name is None or path.name != f"{name}_results.json":
        raise InconsistentResults(f"{path} says model_name {name!r}, expected {path.name[:-len('_results.json')]!r}: "
                                  f"{EVAL_FIX} for it")
    _check_settings_version(path, results, fingerprints)
    samples_path = path.parent / results.get("samples_file", f"{name}_samples.jsonl")
    rows = _read_samples(samples_path)
    summary = summarize_samples(rows)
    check_results(results, summary, path, samples_path)
    return {"results": results, "rows": rows, "summary": summary, "samples_path": samples_path}


def _check_settings_version(path: Path, results: dict[str, Any], fingerprints: dict[str, Any]) -> None:
    """Results evaluated under other shared or evaluation settings than the rest are not comparable."""
    claimed = results.get("settings_fingerprints")
    if not claimed:
        return  # version 1 results carry none
    for part in ("shared", "eval"):
        expected = fingerprints.get(part)
        if expected is None:
            fingerprints[part] = (claimed.get(part), path.name)
        elif claimed.get(part) != expected[0]:
            raise UserError(f"{path} was evaluated under {part} settings {claimed.get(part)} but {expected[1]} under "
                            f"{expected[0]}: results of different settings versions are not comparable; "
                            f"{EVAL_FIX} (it redoes results whose settings changed)")


def load_models(evaluated: list[tuple[Path, dict[str, Any]]], fingerprints: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every final model's results (read_results), checked against its samples file, keyed by model name."""
    models = {}
    for path, results in evaluated:
        if results.get("checkpoint"):
            continue  # intermediate checkpoints: load_checkpoints
        loaded = _load_evaluated(path, results, fingerprints)
        results, rows, name = loaded["results"], loaded["rows"], loaded["results"]["model_name"]
        models[name] = {
            "name": name,
            "experiment_id": results.get("experiment_id"),
            "results_file": f"eval/{path.name}",
            "samples_file": f"eval/{loaded['samples_path'].name}",
            "headline_grader": results["headline_grader"],
            "model_fingerprint": _lookup(results, "model.fingerprint"),
            **loaded["summary"],
            # per-problem rows and verdicts for the later sections; left out of report.json
            "_rows": rows,
            "_sampled_claimed": results.get("sampled"),
            "_verdicts": {grader: {s["id"]: bool(s[key]) for s in rows} for grader, key in GRADERS.items()},
        }
    return models


def load_checkpoints(evaluated: list[tuple[Path, dict[str, Any]]], fingerprints: dict[str, Any]) -> list[dict[str, Any]]:
    """Accuracy of every evaluated intermediate checkpoint, recomputed from its samples, by arm and step."""
    points = []
    for path, results in evaluated:
        if not results.get("checkpoint"):
            continue
        loaded = _load_evaluated(path, results, fingerprints)
        results, summary = loaded["results"], loaded["summary"]
        points.append({"name": results["model_name"], **results["checkpoint"], "results_file": f"eval/{path.name}",
                       "n": summary["n"],
                       **{f"accuracy_{g}": summary["graders"][g]["accuracy"] for g in GRADERS},
                       **{f"ci95_{g}": summary["graders"][g]["ci95"] for g in GRADERS},
                       # per-problem verdicts for the still-improving test; left out of report.json
                       "_verdicts": {g: {s["id"]: bool(s[key]) for s in loaded["rows"]} for g, key in GRADERS.items()}})
    return sorted(points, key=lambda p: (p["arm"], p["step"]))


def load_ood(eval_dir: Path, models: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Accuracy on each out-of-distribution set (eval/ood/<set>/), recomputed from its samples, and the drop
    from the same model's GSM8K accuracy with an unpaired normal-approximation 95% interval (different problems,
    so no pairing)."""
    rows = []
    for path in sorted((eval_dir / "ood").glob("*/*_results.json")):
        loaded = _load_evaluated(path, _read_json(path, contract.EVAL_RESULTS), {})
        results, summary = loaded["results"], loaded["summary"]
        name, grader = results["model_name"], results["headline_grader"]
        accuracy, n = summary["graders"][grader]["accuracy"], summary["n"]
        entry = {"set": path.parent.name, "model": name, "n": n, "grader": grader, "accuracy": accuracy,
                 "ci95": summary["graders"][grader]["ci95"], "results_file": f"eval/{path.relative_to(eval_dir)}",
                 "dropped_non_numeric": (results.get("dataset") or {}).get("dropped_non_numeric")}
        if name in models:
            base_accuracy = models[name]["graders"][grader]["accuracy"]
            base_n = models[name]["n"]
            spread = 1.96 * ((accuracy * (1 - accuracy) / n) + (base_accuracy * (1 - base_accuracy) / base_n)) ** 0.5
            drop = base_accuracy - accuracy
            entry.update(gsm8k_accuracy=base_accuracy, drop=drop, drop_ci95=[drop - spread, drop + spread])
        rows.append(entry)
    rank = {name: i for i, name in enumerate(model_order([r["model"] for r in rows]))}
    return sorted(rows, key=lambda r: (r["set"], rank[r["model"]]))


# Other people's numbers for the reference protocol (GSM8K, 8-shot chain of thought), shown beside ours and
# labelled as such (anchors.md section 1.1). Protocols differ in detail (exemplar rendering, generation length).
PUBLISHED_ANCHORS = (
    ("Llama-3.1-8B base", 56.6, "8-shot CoT, exact match; Lin et al., arXiv 2503.20110, Table 1"),
    ("Tulu 3 8B SFT", 76.2, "same table"),
    ("Tulu 3.1 8B (GRPO)", 89.9, "same table"),
    ("Llama-3.1-8B-Instruct, lm-eval gsm8k 8-shot", 77.79, "flexible-extract; huggingface.co/meta-llama/"
     "Llama-3.1-8B-Instruct/discussions/81"),
)


def load_reference(eval_dir: Path) -> list[dict[str, Any]]:
    """The reference protocol's results (lm-eval gsm8k_cot), one entry per model, in model order."""
    found = {}
    for path in sorted(eval_dir.glob("*_reference_results.json")):
        results = _read_json(path, contract.REFERENCE_RESULTS)
        found[results["model_name"]] = {
            "name": results["model_name"], "results_file": f"eval/{path.name}", "n": results["n"],
            "limit": results.get("limit"), "lm_eval_version": results.get("lm_eval_version"),
            "metrics": results["metrics"],
            "ci95": {f: list(wilson_interval(round(m["exact_match"] * results["n"]), results["n"]))
                     for f, m in results["metrics"].items() if m.get("exact_match") is not None and results["n"]}}
    return [found[name] for name in model_order(list(found))]


def model_order(names: list[str]) -> list[str]:
    """base, sft, rlvr first, then the others (checkpoints, later arms) alphabetically."""
    return [name for name in contract.MODELS if name in names] + sorted(set(names) - set(contract.MODELS))


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




def _same(manifests: dict[str, dict[str, Any]], getter) -> bool | None:
    if "sft" not in manifests or "rlvr" not in manifests:
        return None
    return getter(manifests["sft"]) == getter(manifests["rlvr"])


# ----------------------------------------------------------------------------- one experiment


def _diversity(models: dict[str, dict[str, Any]], missing: list[str]) -> dict[str, Any]:
    """Section 5 per model; pass@k and maj@k recomputed from the samples must match the results file."""
    out = {}
    for name in model_order(list(models)):
        model = models[name]
        try:
            result = diversity.analyze(model["_rows"])
        except ValueError as error:  # some rows sampled, others not: a partial or mixed samples file
            raise InconsistentResults(f"{model['samples_file']}: {error}; {EVAL_FIX} --force for {name}") from None
        claimed = model["_sampled_claimed"]
        if claimed and result["n_per_problem"]:
            for grader in GRADERS:
                for ours, theirs in (("pass_at_k", "pass@k"), ("maj_at_k", "maj@k")):
                    computed, stated = result[ours][grader], (claimed.get(grader) or {}).get(theirs) or {}
                    wrong = [k for k in computed if k not in stated or _disagrees(stated[k], computed[k])]
                    if wrong:
                        raise InconsistentResults(
                            f"{model['results_file']}: sampled.{grader}.{theirs} at k={wrong[0]} is "
                            f"{stated.get(wrong[0])!r} but {model['samples_file']} gives {computed[wrong[0]]!r}; "
                            f"{EVAL_FIX} --force for {name}")
        out[name] = result
    without = [name for name, r in out.items() if not r["n_per_problem"]]
    if without:
        missing.append(f"no sampled completions for {', '.join(without)}: set samples above 0 in configs/eval.toml "
                       f"and {EVAL_FIX} --force (pass@k, maj@k and n-gram diversity need them)")
    return out


def pass_at_k_crossover(diversity_by_model: dict[str, dict[str, Any]], grader: str = "robust") -> list[dict[str, Any]]:
    """Yue et al.'s question for each trained model against the base: ahead at k = 1, and from which k (if any)
    the base catches up (pass@k of the base >= the model's)."""
    base = (diversity_by_model.get("base") or {}).get("pass_at_k", {}).get(grader) or {}
    rows = []
    for name in contract.ARMS:
        curve = (diversity_by_model.get(name) or {}).get("pass_at_k", {}).get(grader) or {}
        ks = sorted(set(curve) & set(base), key=int)
        if not ks:
            continue
        caught = next((int(k) for k in ks if base[k] >= curve[k]), None)
        rows.append({"model": name, "grader": grader, "k_max": int(ks[-1]),
                     "lead_at_1": curve[ks[0]] - base[ks[0]], "lead_at_k_max": curve[ks[-1]] - base[ks[-1]],
                     "base_catches_up_at_k": caught})
    return rows


def headline_grader(models: dict[str, dict[str, Any]]) -> str:
    """The one grader every final model's results file names as the headline (configs/eval.toml)."""
    named = {model["headline_grader"]: model["results_file"] for model in models.values()}
    if len(named) > 1:
        files = ", ".join(f"{file} says {grader!r}" for grader, file in named.items())
        raise UserError(f"the results files name different headline graders ({files}): re-run {contract.EVALUATE} "
                        "--force so every model is summarised under headline_grader of configs/eval.toml")
    return next(iter(named))


def _verdicts(curves: dict[str, list[dict[str, Any]]], models: dict[str, dict[str, Any]],
              checkpoints: list[dict[str, Any]], dynamics_by_stage: dict[str, Any], grader: str) -> dict[str, Any]:
    """Still improving? for every trained arm with a final model (verdict.py)."""
    verdicts = {name: m["_verdicts"][grader] for name, m in models.items()}
    intervals = {name: m["graders"][grader]["ci95"] for name, m in models.items()}
    for c in checkpoints:
        verdicts[c["name"]], intervals[c["name"]] = c["_verdicts"][grader], c[f"ci95_{grader}"]
    return {arm: verdict.arm_verdict(points, verdicts, intervals,
                                     (dynamics_by_stage.get(arm) or {}).get("metrics") or {}, arm != "sft", BOOTSTRAP)
            for arm, points in curves.items() if arm in models}


def _error_patterns(models: dict[str, dict[str, Any]], grader: str) -> dict[str, Any]:
    """Section 6: who solves what, and why each model's wrong answers fail (headline grader)."""
    grader_key = GRADERS[grader]
    pairs = [error_patterns.solve_sets(models[a]["_rows"], models[b]["_rows"], grader_key) | {"a": a, "b": b}
             for a, b in SOLVE_SETS if a in models and b in models]
    main = [m for m in contract.MODELS if m in models]
    venn = {" + ".join(c for c, keep in zip(main, mask) if keep) or "none": 0
            for mask in itertools.product((True, False), repeat=len(main))}  # every pattern, so seeds align
    common = set.intersection(*(set(models[m]["_verdicts"][grader]) for m in main)) if main else set()
    for problem in sorted(common):
        solved = [m for m in main if models[m]["_verdicts"][grader][problem]]
        label = " + ".join(solved) if solved else "none"
        venn[label] += 1
    return {"grader": grader, "pairs": pairs, "solved_by": {"models": main, "n": len(common), "counts": venn},
            "categories": {name: error_patterns.failure_categories(models[name]["_rows"], grader_key)
                           for name in model_order(list(models))}}


def _seed(experiment_dir: Path, manifests: dict[str, dict[str, Any]], models: dict[str, dict[str, Any]]) -> int | None:
    settings = next((m.get("settings") for m in manifests.values() if m.get("settings")), None)
    experiment_id = next((m["experiment_id"] for m in models.values() if m.get("experiment_id")), experiment_dir.name)
    return seeds.seed_of(experiment_id, settings)


def analyze(experiment_dir: Path, target_accuracy: float | None = None) -> dict[str, Any]:
    """Everything the report shows for one experiment, as one JSON-ready dict, plus "_private" inputs
    (per-problem verdicts) that the several-seeds analysis needs and report.json leaves out."""
    eval_dir = experiment_dir / "eval"
    owner = experiment_dir / "experiment.json"
    fingerprints: dict[str, Any] = {}
    if owner.is_file():
        shared = _read_json(owner, contract.EXPERIMENT).get("shared_fingerprint")
        if shared:
            fingerprints["shared"] = (shared, "experiment.json")
    evaluated = read_results(eval_dir)
    models = load_models(evaluated, fingerprints)
    if not models:
        raise UserError(f"no evaluation results (eval/*_results.json) in {experiment_dir}: {EVAL_FIX} first")
    missing = [f"no eval/{name}_results.json: {EVAL_FIX}" for name in contract.MODELS
               if name not in models and name not in contract.OPTIONAL_ARMS]
    comparisons = []
    for a, b in COMPARISONS:
        absent = [name for name in (a, b) if name not in models]
        if absent and set(absent) <= set(contract.OPTIONAL_ARMS):
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
    checkpoints = load_checkpoints(evaluated, fingerprints)
    dynamics_by_stage, manifests = {}, {}
    stages = tuple(arm for arm in contract.ARMS if arm not in contract.OPTIONAL_ARMS or (experiment_dir / arm).is_dir())
    for stage in stages:
        path = experiment_dir / stage / "manifest.json"
        if not path.exists():
            dynamics_by_stage[stage] = {"missing": f"no {stage}/manifest.json: run {contract.HOW_TO_PRODUCE[stage]}"}
        else:
            manifests[stage] = _read_json(path, contract.MANIFEST)
            dynamics_by_stage[stage] = dynamics.stage_dynamics(experiment_dir, stage, manifests[stage])
        if "missing" in dynamics_by_stage[stage]:
            missing.append(dynamics_by_stage[stage]["missing"])
    assumptions = plan.load_assumptions(Path(os.environ.get("CONFIG_DIR") or settings_mod.DEFAULT_CONFIG_DIR))
    grader = headline_grader(models)
    finals = {name: m["graders"][grader]["accuracy"] for name, m in models.items()}
    arm_budgets = budgets.with_gains(
        {stage: budgets.arm_budget(experiment_dir / stage, stage, manifest, dynamics_by_stage[stage], assumptions)
         for stage, manifest in manifests.items()}, finals)
    for data in dynamics_by_stage.values():
        data.pop("_history", None)  # the raw rows fed the wall-clock split only
    sample_efficiency = efficiency.analyze(checkpoints, finals, arm_budgets, grader, target_accuracy)
    arm_verdicts = _verdicts(sample_efficiency["curves"], models, checkpoints, dynamics_by_stage, grader)
    for c in checkpoints:
        del c["_verdicts"]
    if not checkpoints:
        missing.append(f"no intermediate checkpoint results: set checkpoints = true in configs/eval.toml and "
                       f"{EVAL_FIX} (sample efficiency then has only start and end points)")
    diversity_by_model = _diversity(models, missing)
    ids = {m["experiment_id"] for m in models.values()} | {m.get("experiment_id") for m in manifests.values()}
    report = {
        "format": contract.REPORT.id,
        "version": contract.REPORT.version,
        "experiment_ids": sorted(str(i) for i in ids if i is not None),
        "seed": _seed(experiment_dir, manifests, models),
        "headline_grader": grader,
        "models": [{k: v for k, v in models[name].items() if not k.startswith("_")} for name in model_order(list(models))],
        "comparisons": comparisons,
        "verdicts": arm_verdicts,
        "bootstrap": dict(BOOTSTRAP),
        "reference": {"ours": load_reference(eval_dir),
                      "published": [{"model": m, "gsm8k_8shot_cot": v, "source": src} for m, v, src in PUBLISHED_ANCHORS]},
        "budgets": arm_budgets,
        "budget_assumptions": {"price_per_gpu_hour": assumptions["hardware"]["price_per_gpu_hour"],
                               "chars_per_token": assumptions["lengths"]["chars_per_token"],
                               "source": "configs/plan.toml"},
        "dynamics": dynamics_by_stage,
        "checkpoints": checkpoints,
        "efficiency": sample_efficiency,
        "diversity": diversity_by_model,
        "pass_at_k_crossover": pass_at_k_crossover(diversity_by_model, grader),
        "errors": _error_patterns(models, grader),
        "ood": load_ood(eval_dir, models),
        "weights": weights.load(experiment_dir),
        "reproducibility": {
            "stages": {stage: reproducibility(manifest, stage) for stage, manifest in manifests.items()},
            "same_data": _same(manifests, lambda m: m.get("data")),
            "same_shared_settings": _same(manifests, lambda m: (m.get("settings_fingerprints") or {}).get("shared")),
        },
        "missing": missing,
        "_private": {"verdicts": {name: m["_verdicts"] for name, m in models.items()},
                     "settings": next((m.get("settings") for m in manifests.values() if m.get("settings")), None),
                     "present": {**{name: f"{experiment_dir.name}/{m['results_file']}" for name, m in models.items()},
                                 **{f"{stage} stage": f"{experiment_dir.name}/{stage}/manifest.json"
                                    for stage in manifests}}},
    }
    report["findings"] = findings.analyze(report)
    return report


# ----------------------------------------------------------------------------- several seeds


def analyze_seeds(experiment_dirs: list[Path], target_accuracy: float | None = None) -> dict[str, Any]:
    """One report over several seeds of the experiment: each analysed alone, then aggregated (seeds.py)."""
    singles = [analyze(d, target_accuracy) for d in experiment_dirs]
    where = [str(d) for d in experiment_dirs]
    seed_list = [s["seed"] for s in singles]
    for s, folder in zip(seed_list, where):
        if s is None:
            raise UserError(f"cannot tell the seed of {folder}: its manifests have no settings and its id no -seed<N>")
    seeds.check_consistent(seed_list, [s["_private"]["present"] for s in singles],
                           [s["_private"]["settings"] for s in singles], where)
    order = sorted(range(len(singles)), key=lambda i: seed_list[i])
    singles = [singles[i] for i in order]
    seed_list = [seed_list[i] for i in order]
    private = [s.pop("_private") for s in singles]
    kept = ("experiment_ids", "missing", "reproducibility", "weights", "bootstrap", "budget_assumptions")
    merged = seeds.aggregate([{k: v for k, v in s.items() if k not in kept + ("seed", "findings")} for s in singles])
    headline = []
    for a, b in COMPARISONS:
        if not all(a in p["verdicts"] and b in p["verdicts"] for p in private):
            continue
        for grader in GRADERS:
            per_seed = []
            for p in private:
                va, vb = p["verdicts"][a][grader], p["verdicts"][b][grader]
                common = [i for i in va if i in vb]
                per_seed.append(([va[i] for i in common], [vb[i] for i in common]))
            headline.append({"a": a, "b": b, "grader": grader, **seeds.paired_across_seeds(
                per_seed, BOOTSTRAP["n_boot"], BOOTSTRAP["seed"], BOOTSTRAP["level"])})
    report = {**merged, "format": contract.REPORT.id, "version": contract.REPORT.version,
              "experiment_ids": [i for s in singles for i in s["experiment_ids"]],
              "seeds": seed_list,
              "across_seeds": {"comparisons": headline, "experiment_dirs": [where[i] for i in order]},
              "missing": sorted({note for s in singles for note in s["missing"]}),
              "reproducibility": {"per_seed": {str(seed): s["reproducibility"] for seed, s in zip(seed_list, singles)}},
              "weights": singles[0]["weights"],
              "bootstrap": singles[0]["bootstrap"], "budget_assumptions": singles[0]["budget_assumptions"],
              "weights_seed": seed_list[0]}
    report["findings"] = findings.analyze(report)
    return report


# ----------------------------------------------------------------------------- entry point


def build_report(experiment_dir: str | Path | list, out_dir: str | Path | None = None,
                 target_accuracy: float | None = None) -> Path:
    """Analyze one experiment folder (or a list: several seeds) and write the report files; returns report.md."""
    from sft_vs_rlvr.report import document as report_document  # matplotlib loads only when a report is written

    dirs = [Path(d) for d in (experiment_dir if isinstance(experiment_dir, (list, tuple)) else [experiment_dir])]
    for folder in dirs:
        if not folder.is_dir():
            raise UserError(f"experiment folder {folder} does not exist: pass --experiment-dir <output_root>/<id>")
    if target_accuracy is not None and not 0 < target_accuracy < 1:
        raise UserError(f"--target-accuracy {target_accuracy} is not a share between 0 and 1; e.g. 0.5 for 50%")
    if len(dirs) == 1:
        report = analyze(dirs[0], target_accuracy)
        report.pop("_private")
        report["seeds"] = [report.pop("seed")]
        default_out = dirs[0] / "report"
    else:
        report = analyze_seeds(dirs, target_accuracy)
        default_out = dirs[0].parent / f"report-seeds-{'-'.join(map(str, report['seeds']))}"
    out_dir = Path(out_dir) if out_dir is not None else default_out
    blocks, figures = report_document.build_document(report)
    report["figures"] = [f"figures/{name}" for name in sorted(figures)]
    # Everything is computed before the first write; each file is replaced atomically.
    for name, png in figures.items():
        atomic.write_bytes(out_dir / "figures" / name, png)
    atomic.write_json(out_dir / "report.json", report)
    atomic.write_text(out_dir / "report.html", report_document.render_html(blocks, figures))
    return atomic.write_text(out_dir / "report.md", report_document.render_markdown(blocks))


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write report.md, report.html and report.json for one experiment "
                                                 "or several seeds of it.")
    parser.add_argument("--experiment-dir", required=True, type=Path, action="append",
                        help="<output_root>/<experiment id>; repeat it for several seeds of one experiment")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: <experiment-dir>/report; several seeds: "
                             "<output_root>/report-seeds-<s1>-<s2>...)")
    parser.add_argument("--target-accuracy", type=float, default=None,
                        help="sample efficiency: examples needed to reach this accuracy (a share, e.g. 0.5); "
                             "default: midway between the base and the best final arm")
    args = parser.parse_args(argv)
    print(build_report(args.experiment_dir, args.out, args.target_accuracy))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

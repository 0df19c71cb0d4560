"""The report as a document: blocks built from report.json's dict, rendered as Markdown and self-contained HTML.

Blocks: ("h1"|"h2"|"h3"|"p", text), ("table", headers, rows), ("figure", file, caption). Every number in a
block is formatted from a value of the report dict. With several seeds a value is an aggregate
(seeds.py): it prints as "mean ± sd" and the seeds section lists each seed's values.
"""

from __future__ import annotations

import base64
import html
from typing import Any

from sft_vs_rlvr.report import dynamics as dynamics_mod
from sft_vs_rlvr.report import figures as fig
from sft_vs_rlvr.report.findings import ALPHA
from sft_vs_rlvr.report.reproducibility import MANIFEST_FIELDS
from sft_vs_rlvr.report.seeds import is_aggregate, mean_of

MODEL_TITLES = {"base": "base", "sft": "SFT", "rlvr": "RLVR", "sft_rlvr": "SFT then RLVR"}
STAGE_TITLES = {"sft": "SFT", "rlvr": "RLVR (GRPO)", "sft_rlvr": "SFT then RLVR"}


# ----------------------------------------------------------------------------- formatting


def _per_seed(formatter):
    """A value that differs in kind across seeds ({"per_seed": [...]}) prints each seed's, joined by " / "."""
    def wrapped(x: Any) -> str:
        if isinstance(x, dict) and "per_seed" in x and not is_aggregate(x):
            return " / ".join(wrapped(v) for v in x["per_seed"])
        return formatter(x)
    wrapped.__doc__ = formatter.__doc__
    return wrapped


def _spread(x: dict[str, Any], scale: float, spec: str) -> str:
    """mean ± sd; the mean alone when every seed agrees (settings, counts fixed by design)."""
    mean = format(scale * x["mean"], spec)
    return f"{mean} ± {format(scale * x['sd'], spec.lstrip('+'))}" if x["sd"] else mean


@_per_seed
def pct(x: Any) -> str:
    if x is None:
        return "-"
    return _spread(x, 100, ".1f") + "%" if is_aggregate(x) else f"{100 * x:.1f}%"


@_per_seed
def pp(x: Any) -> str:
    if x is None:
        return "-"
    return _spread(x, 100, "+.1f") + " pp" if is_aggregate(x) else f"{100 * x:+.1f} pp"


def interval(ci: Any) -> str:
    if not ci:
        return "-"
    lo, hi = (c["mean"] if is_aggregate(c) else c for c in ci)
    return f"[{100 * lo:.1f}, {100 * hi:.1f}]" + (" (mean bounds)" if is_aggregate(ci[0]) else "")


@_per_seed
def num(x: Any) -> str:
    if x is None:
        return "-"
    if is_aggregate(x):
        return _spread(x, 1, ".4g")
    if isinstance(x, dict) and "per_seed" in x:
        return " / ".join(num(v) for v in x["per_seed"])
    if isinstance(x, bool):
        return str(x)
    return f"{x:.4g}" if isinstance(x, float) else str(x)


@_per_seed
def count(x: Any) -> str:
    if x is None:
        return "-"
    if is_aggregate(x):
        return _spread(x, 1, ".1f") if x["sd"] else f"{x['mean']:.4g}"
    return str(x) if isinstance(x, int) else f"{x:.4g}"


@_per_seed
def sci(x: Any) -> str:
    if x is None:
        return "-"
    return _spread(x, 1, ".3g") if is_aggregate(x) else f"{x:.3g}"


def text(x: Any) -> str:
    if isinstance(x, dict) and "per_seed" in x:
        return " / ".join(str(v) for v in x["per_seed"])
    return "-" if x is None else str(x)


def _first_seed(value: Any) -> Any:
    """Examples and texts: with several seeds, those of the first seed (said in the section)."""
    if isinstance(value, dict) and "per_seed" in value:
        return value["per_seed"][0]
    return value


# ----------------------------------------------------------------------------- sections


def build_document(report: dict[str, Any]) -> tuple[list[tuple], dict[str, bytes]]:
    """Blocks and the PNG figures they reference, from the report dict."""
    several = len(report["seeds"]) > 1
    blocks: list[tuple] = [("h1", "SFT vs RLVR on GSM8K"),
                           ("p", f"Experiment: {', '.join(report['experiment_ids']) or 'unknown'}. "
                                 f"Seed{'s' if several else ''}: {', '.join(map(str, report['seeds']))}."
                                 + (" Every number is the mean ± standard deviation across seeds (section 8 lists "
                                    "each seed)." if several else ""))]
    figures: dict[str, bytes] = {}
    blocks += _findings(report)
    if report["missing"]:
        blocks += [("h2", "Missing inputs")] + [("p", f"Missing: {note}") for note in report["missing"]]
    blocks += _headline(report, figures)
    blocks += _budgets(report)
    blocks += _dynamics(report, figures)
    blocks += _efficiency(report, figures)
    blocks += _diversity(report, figures)
    blocks += _errors(report, several)
    blocks += _robustness(report)
    blocks += _seeds(report)
    blocks += _reproducibility(report)
    blocks += _weights(report.get("weights"), figures, report.get("weights_seed"))
    return blocks, figures


def _epochs(x: Any) -> str:
    return f"{num(x)} epoch{'' if mean_of(x) == 1 else 's'}"


def _title(name: str) -> str:
    return MODEL_TITLES.get(name, name)


def _effect(c: dict[str, Any]) -> str:
    """a - b = effect (interval; test p; what it was computed over)."""
    over = (f"{count(c['n'])} paired problems" if c["test"] == "McNemar" else
            f"{count(c['n'])} seeds, McNemar p < {num(ALPHA)} in {count(c['seeds_significant'])} of them")
    return (f"{_title(c['a'])} - {_title(c['b'])} = {pp(c['difference'])} ({c['interval']} 95% CI "
            f"{interval(c['ci95'])}; {c['test']} p = {sci(c['p'])}; {over})")


def _short(c: dict[str, Any]) -> str:
    return f"{pp(c['difference'])}, 95% CI {interval(c['ci95'])}, p = {sci(c['p'])}"


def _claim(c: dict[str, Any], grader: str, other: str) -> str:
    second = c.get("other")
    if c["significant"]:
        ahead = mean_of(c["difference"]) > 0
        winner, loser = (c["a"], c["b"]) if ahead else (c["b"], c["a"])
        text = f"{_title(winner)} beats {_title(loser)} under the {grader} grader: {_effect(c)}"
        if second:
            text += (f"; it holds under the {other} grader ({_short(second)})" if c["other_agrees"] else
                     f"; not under the {other} grader ({_short(second)})")
        return text + "."
    text = f"No difference detected between {_title(c['a'])} and {_title(c['b'])} under the {grader} grader: {_effect(c)}"
    if second:
        text += (f"; nor under the {other} grader ({_short(second)})" if c["other_agrees"] else
                 f"; the {other} grader does detect one ({_short(second)})")
    return text + "."


def _caveat(c: dict[str, Any]) -> str:
    kind = c["kind"]
    if kind == "one_seed":
        return (f"One seed ({c['seed']}): the intervals cover which test problems were drawn, not training "
                "randomness (seed, data order, sampled rollouts), so whether these differences replicate is untested "
                "(section 8).")
    if kind == "still_improving":
        arm = STAGE_TITLES[c["arm"]]
        if c["seeds"] > 1:
            return (f"{arm} may still be improving in {count(c['seeds_rising'])} of {count(c['seeds'])} seeds "
                    f"({text(c['verdict'])}; section 1): its number may be a cut-off, not a plateau.")
        a, curve = c.get("accuracy") or {}, c.get("curve") or {}
        accuracy = (f"accuracy {pp(a.get('change'))} over its last third, 95% CI {interval(a.get('change_ci95'))}, "
                    f"McNemar p = {sci(a.get('mcnemar_p'))}")
        rising = (f"its {text(curve.get('metric'))} still rose {num(curve.get('change'))} over the last third of its "
                  f"steps (p = {sci(curve.get('p'))}, optimistic for an autocorrelated curve)")
        if c["verdict"] == "still improving":
            return f"{arm} was still improving when training stopped ({accuracy}): its number is a cut-off, not a plateau."
        if c["verdict"] == "flat accuracy, rising curve":
            return f"{arm} may still be improving: no accuracy change detected ({accuracy}), but {rising}."
        return f"{arm} may still be improving: {rising}, and no intermediate checkpoint was evaluated."
    if kind == "optimization":
        parts = [f"{STAGE_TITLES[arm]} {count(a['optimizer_updates'])} optimizer updates (summed learning rate "
                 f"{sci(a['lr_sum'])})" for arm, a in c["arms"].items()]
        return f"Optimization is not held equal: {'; '.join(parts)}."
    if kind == "exposure":
        parts = [f"{STAGE_TITLES[arm]} {_epochs(a['epochs'])} of {count(a['training_rows'])} rows"
                 for arm, a in c["arms"].items()]
        return f"Data exposure is not held equal in this experiment: {', '.join(parts)}."
    if kind == "multiplicity":
        return (f"{count(c['tests'])} tests (every pair, both graders) are not corrected for multiplicity: at "
                f"p < {num(c['alpha'])} about one in twenty true nulls still passes.")
    return str(c)


def _findings(report: dict[str, Any]) -> list[tuple]:
    f = report.get("findings")
    if not f:
        return []
    blocks: list[tuple] = [("h2", "Findings")]
    if f["claims"]:
        blocks.append(("p", " ".join(_claim(c, f["grader"], f["other_grader"]) for c in f["claims"])))
    else:
        blocks.append(("p", "No paired comparison could be made: see the missing inputs below."))
    if f["caveats"]:
        blocks.append(("p", "Caveats. " + " ".join(_caveat(c) for c in f["caveats"])))
    return blocks


def _design_statement(report: dict[str, Any]) -> list[tuple]:
    design = (report.get("findings") or {}).get("design") or {}
    arms = design.get("arms") or {}
    if not arms:
        return []
    exposure = ", ".join(f"{STAGE_TITLES[arm]} {_epochs(a['epochs'])}" for arm, a in arms.items())
    rows = {count(a["training_rows"]) for a in arms.values()}
    if design["equal_exposure"]:
        held = (f"Held equal: data exposure. Every arm passes over the same {', '.join(sorted(rows))} training "
                f"problems as often ({exposure}): SFT on their gold solutions, RLVR on its own sampled answers.")
    else:
        held = (f"Data exposure is NOT held equal in this experiment ({exposure} over "
                f"{' / '.join(sorted(rows))} training problems).")
    updates = ", ".join(f"{STAGE_TITLES[arm]} {count(a['optimizer_updates'])}" for arm, a in arms.items())
    lrs = ", ".join(f"{STAGE_TITLES[arm]} {sci(a['lr_sum'])}" for arm, a in arms.items())
    sequences = ", ".join(f"{STAGE_TITLES[arm]} {count(a['sequences_trained'])}" for arm, a in arms.items())
    return [("p", f"{held} Not held equal: optimization. Optimizer updates: {updates}; summed learning rate: "
                  f"{lrs}; sequences trained: {sequences}; tokens and FLOPs differ too (section 2).")]


def _verdicts(report: dict[str, Any]) -> list[tuple]:
    verdicts = report.get("verdicts") or {}
    if not verdicts:
        return []
    rows = []
    for arm, v in verdicts.items():
        points = _first_seed(v["last_points"]) or []
        last = "; ".join(f"{text(p['label'])} {pct(p['accuracy'])} {interval(p['ci95'])}" for p in points)
        a, c = v.get("accuracy") or {}, v.get("curve") or {}
        window = (f"{text(a['from'])} ({count(a['from_examples'])}) to {text(a['to'])} ({count(a['to_examples'])})"
                  if a else "-")
        rows.append([STAGE_TITLES[arm], text(v["verdict"]), last, window, pp(a.get("change")),
                     interval(a.get("change_ci95")), sci(a.get("mcnemar_p")), text(c.get("metric")),
                     num(c.get("change")), sci(c.get("p"))])
    return [("h3", f"Still improving? ({report['headline_grader']} grader)"),
            ("p", "Each arm's final model against its checkpoint nearest two thirds of the way, on the same problems "
                  "(paired bootstrap interval, McNemar p), and the slope of its training curve over the last third "
                  "of its steps (RL: in-loop eval pass@1 where logged, else the solve rate; SFT logs no reward). "
                  "A significant accuracy rise means the arm's number is a cut-off, not a plateau (verdict.py)."),
            ("table", ["arm", "verdict", "last points (accuracy, 95% CI)", "window (examples seen)",
                       "accuracy change", "95% CI", "McNemar p", "training curve", "curve change (last third)",
                       "curve p"], rows)]


def _headline(report: dict[str, Any], figures: dict[str, bytes]) -> list[tuple]:
    models = report["models"]
    blocks: list[tuple] = [("h2", "1. Headline: accuracy on the GSM8K test split (greedy pass@1)")]
    blocks += _design_statement(report)
    blocks.append(("table", ["model", "n", "robust", "robust 95% CI", "verifier", "verifier 95% CI", "headline",
                             "truncated", "no answer", "grader disagreements", "mean response tokens"],
                   [[m["name"], count(m["n"]), pct(m["graders"]["robust"]["accuracy"]),
                     interval(m["graders"]["robust"]["ci95"]), pct(m["graders"]["verifier"]["accuracy"]),
                     interval(m["graders"]["verifier"]["ci95"]), text(m["headline_grader"]),
                     count(m["counts"]["truncated"]), count(m["counts"]["no_answer"]),
                     count(m["counts"]["grader_disagreements"]), num(m["mean_response_tokens"])] for m in models]))
    blocks.append(("p", f"Headline grader: {text(report['headline_grader'])} (configs/eval.toml headline_grader); "
                        "the other grader is beside it. " + (
                            "What the 95% intervals cover: which test problems were drawn, for one trained model per "
                            "arm. They do not cover training randomness (seed, data order, sampled rollouts), which "
                            "can move an arm by more; several seeds measure it (section 8)."
                            if len(report["seeds"]) == 1 else
                            "Each interval is the mean of the per-seed intervals and covers test-problem sampling "
                            "only; the seed-level test, which covers training randomness too, is in section 8.")))
    blocks += _verdicts(report)
    figures["accuracy.png"] = fig.accuracy(models)
    blocks.append(("figure", "accuracy.png", "Accuracy per model and grader with 95% Wilson intervals"))
    boot = report["bootstrap"]
    blocks.append(("h3", "Paired comparisons on the same problems"))
    blocks.append(("p", f"Difference = accuracy of the first model minus the second, on the problems both were "
                        f"evaluated on (matched by id). Interval: paired bootstrap, {num(boot['n_boot'])} resamples, "
                        f"seed {num(boot['seed'])}, percentile {pct(boot['level'])}. p: exact two-sided McNemar "
                        f"test on the problems exactly one model solved."))
    if report["comparisons"]:
        blocks.append(("table", ["comparison", "grader", "n paired", "first", "second", "difference",
                                 "bootstrap 95% CI", "McNemar p", "both correct", "only first", "only second",
                                 "neither"],
                       [[f"{c['a']} - {c['b']}", c["grader"], count(c["n_paired"]), pct(c["accuracy_a"]),
                         pct(c["accuracy_b"]), pp(c["difference"]), interval(c["bootstrap_ci95"]),
                         sci(c["mcnemar_p"]), count(c["table"]["both_correct"]), count(c["table"]["a_only"]),
                         count(c["table"]["b_only"]), count(c["table"]["neither"])] for c in report["comparisons"]]))
        for c in report["comparisons"]:
            unpaired = c["unpaired"]
            if any(is_aggregate(v) and v["max"] or (not is_aggregate(v) and v) for v in unpaired.values()):
                blocks.append(("p", f"Warning: {c['a']} - {c['b']} ({c['grader']}): {count(unpaired['a_only_ids'])} "
                                    f"problems only in {c['a']}, {count(unpaired['b_only_ids'])} only in {c['b']} "
                                    f"were left out of the pairing."))
    else:
        blocks.append(("p", "No comparison possible: see the missing inputs above."))
    across = (report.get("across_seeds") or {}).get("comparisons")
    if across:
        blocks.append(("p", "With several seeds the headline test treats seeds as replicates: see section 8 "
                            "(t-test over the per-seed paired differences, and a two-stage bootstrap over seeds and "
                            "problems)."))
    reference = report.get("reference") or {}
    blocks.append(("h3", "Reference protocol: lm-eval gsm8k_cot, 8-shot, no chat template"))
    if reference.get("ours"):
        blocks.append(("p", "Plain few-shot text, the same for every model, comparable with published numbers; "
                            "out of the trained models' own format, so not the headline. Interval: Wilson."))
        blocks.append(("table", ["model", "problems", "strict-match", "95% CI", "flexible-extract", "95% CI", "lm-eval"],
                       [[r["name"], count(r["n"]), pct(r["metrics"]["strict-match"]["exact_match"]),
                         interval((r.get("ci95") or {}).get("strict-match")),
                         pct(r["metrics"]["flexible-extract"]["exact_match"]),
                         interval((r.get("ci95") or {}).get("flexible-extract")), text(r["lm_eval_version"])]
                        for r in reference["ours"]]))
    else:
        blocks.append(("p", "Not run: set reference = true in configs/eval.toml and run ./evaluate_comparison.sh."))
    blocks.append(("p", "Published anchors, other people's numbers for the same protocol (not measured here):"))
    blocks.append(("table", ["model (published)", "GSM8K 8-shot CoT", "source"],
                   [[a["model"], f"{num(a['gsm8k_8shot_cot'])}%", a["source"]] for a in reference.get("published", [])]))
    return blocks


def _budgets(report: dict[str, Any]) -> list[tuple]:
    blocks: list[tuple] = [("h2", "2. Budgets beside results")]
    arms = report.get("budgets") or {}
    if not arms:
        return blocks + [("p", "No stage manifests: run the training stages first.")]
    assumptions = report["budget_assumptions"]
    blocks.append(("p", f"From each stage's manifest, data manifest and W&B run (sft_vs_rlvr/report/budgets.py). "
                        "Examples are counted as sequences for both arms: an SFT row is one, an RL prompt with its "
                        "samples is one per sample. FLOPs are estimates (6 N per trained token; RL adds 2 N per "
                        f"generated token and the reference forward when beta > 0). Cost at "
                        f"{num(assumptions['price_per_gpu_hour'])} USD per GPU-hour ({assumptions['source']}, an "
                        f"assumption). SFT then RLVR counts only its RL stage: add the SFT row for its total."))
    blocks.append(("h3", "Exposure and optimization"))
    blocks.append(("table", ["arm", "training rows", "epochs", "prompts seen", "samples per prompt",
                             "sequences trained", "optimizer updates", "updates from", "summed learning rate",
                             "accuracy", "points over base"],
                   [[STAGE_TITLES[arm], count(b["training_rows"]), num(b["epochs"]), count(b["prompts_seen"]),
                     count(b["samples_per_prompt"]), count(b["sequences_trained"]), count(b["optimizer_updates"]),
                     text(b["optimizer_updates_source"]), sci(b["lr_sum"]), pct(b["accuracy"]),
                     num(b["points_over_base"])] for arm, b in arms.items()]))
    blocks.append(("h3", "Tokens and FLOPs"))
    blocks.append(("table", ["arm", "tokens trained", "token count from", "tokens generated", "generated from",
                             "tokens processed (trained + generated)", "FLOPs (est.)", "points per 10^18 FLOPs"],
                   [[STAGE_TITLES[arm], sci(b["tokens_trained"]), text(b["tokens_source"]),
                     sci(b["tokens_generated"]), text(b["tokens_generated_source"]), sci(b["tokens_processed"]),
                     sci(b["flops"]), num(b["points_per_exaflop"])] for arm, b in arms.items()]))
    blocks.append(("h3", "Time: start-up, checkpoint I/O and compute"))
    rows, notes = [], []
    for arm, b in arms.items():
        split = b.get("wall_split") or {}
        rows.append([STAGE_TITLES[arm], num(b["wall_seconds"]), num(split.get("startup_seconds")),
                     num(split.get("io_seconds")), num(split.get("compute_seconds")), text(split.get("source")),
                     count(b["gpus"]), num(b["gpu_hours"]), num(b["gpu_hours_compute"]), num(b["cost_usd"]),
                     num(b["points_per_gpu_hour"]), num(b["points_per_compute_gpu_hour"])])
        if split.get("note"):
            notes.append(f"{STAGE_TITLES[arm]}: {text(split['note'])}.")
    blocks.append(("table", ["arm", "wall-clock s", "start-up s", "checkpoint I/O s", "compute s", "split from",
                             "GPUs", "GPU-hours", "compute GPU-hours", "cost USD", "points per GPU-hour",
                             "points per compute GPU-hour"], rows))
    blocks.append(("p", "Start-up + checkpoint I/O + compute = wall-clock (sft_vs_rlvr/report/wall_clock.py); compute "
                        "is everything else (generation, training, weight syncs, in-loop evaluation). Points per "
                        "compute GPU-hour leave out the checkpoint writes the learning curves need. " + " ".join(notes)))
    if any(not is_aggregate(b["gpus"]) and not b["gpus"] for b in arms.values()):
        blocks.append(("p", "Runs without GPUs (the tiny CPU profile) have no GPU-hours or cost; their wall-clock is "
                            "CPU time on this machine."))
    blocks += _pilots(report)
    return blocks


def _pilots(report: dict[str, Any]) -> list[tuple]:
    """The RL pilot's numbers beside the RL arms' budgets, and the run's own first step for comparison."""
    rl = {arm: b for arm, b in (report.get("budgets") or {}).items() if arm != "sft"}
    if not rl:
        return []
    rows = []
    for arm, b in rl.items():
        pilot = _first_seed(b.get("pilot")) if isinstance(b.get("pilot"), dict) and "per_seed" in b["pilot"] \
            else b.get("pilot")
        metrics = (report["dynamics"].get(arm) or {}).get("metrics") or {}
        first = {m: (metrics[m]["first"] if m in metrics else None) for m in ("solve_rate", "trained_groups")}
        if not pilot:
            rows.append([STAGE_TITLES[arm], "no pilot recorded"] + ["-"] * 10
                        + [_point(first["solve_rate"]) if first["solve_rate"] else "-",
                           _point(first["trained_groups"]) if first["trained_groups"] else "-"])
            continue
        rows.append([STAGE_TITLES[arm], text(pilot.get("passed")), pct(pilot.get("informative_groups")),
                     pct(pilot.get("threshold")), num(pilot.get("mean_reward")), pct(pilot.get("stop_rate")),
                     pct(pilot.get("truncation_rate")), num(pilot.get("mean_response_tokens")),
                     pct(pilot.get("groups_all_correct")), pct(pilot.get("groups_all_wrong")),
                     count(pilot.get("prompts")), count(pilot.get("samples")),
                     _point(first["solve_rate"]) if first["solve_rate"] else "-",
                     _point(first["trained_groups"]) if first["trained_groups"] else "-"])
    return [("h3", "RL pilot (before the launch)"),
            ("p", "The starting model sampled in the exact RL setting before any RL compute was spent "
                  "(launch/pilot.py, pilot.json): informative groups are the share whose rewards differ, the share of "
                  "each batch that will train. Beside it, the run's own first logged step (value @ step)."),
            ("table", ["arm", "passed", "informative groups", "threshold", "mean reward", "stop rate",
                       "truncation rate", "mean response tokens", "groups all correct", "groups all wrong", "prompts",
                       "samples", "run: first solve rate", "run: first share of groups trained"], rows)]


def _dynamics(report: dict[str, Any], figures: dict[str, bytes]) -> list[tuple]:
    blocks: list[tuple] = [("h2", "3. Learning dynamics (W&B)"),
                           ("p", "RL arms: open-instruct's grpo_fast logs its reward for the prompt groups that survive "
                                 "its zero-variance filter only, which sits near 50% whatever the policy solves; the "
                                 "solve rate over every sampled prompt is rebuilt from its filtered-group counts, beside "
                                 "the share of groups that trained and the in-loop evaluation on test rows "
                                 "(sft_vs_rlvr/report/rl_signals.py). TRL filters nothing.")]
    stages = report["dynamics"]
    for stage, data in stages.items():
        blocks.append(("h3", STAGE_TITLES[stage]))
        source = data.get("source") or {}
        if source:
            blocks.append(("p", f"W&B run {text(source.get('run_id'))} ({text(source.get('mode'))}, project "
                                f"{text(source.get('project'))}, group {text(source.get('group'))}), read from "
                                f"{text(source.get('run_file'))}. Examples per step: "
                                f"{num(data.get('examples_per_step'))} {text(data.get('examples_unit'))} (from the "
                                f"{text(data.get('examples_per_step_source'))})."))
        if "missing" in data:
            blocks.append(("p", f"Missing: {text(data['missing'])}"))
            continue
        blocks.append(("table", ["metric", "W&B key", "step key", "points", "first (value @ step)",
                                 "last (value @ step)", "min", "max", "note"],
                       [[metric, text(c["key"]), text(c["step_key"]), count(c["n_points"]), _point(c["first"]),
                         _point(c["last"]), num(c["min"]), num(c["max"]), text(c.get("note"))]
                        for metric, c in data["metrics"].items()]))
        unavailable = data.get("unavailable") or {}
        if unavailable:
            blocks.append(("p", f"Curves of the {text(data.get('trainer'))} run that are not shown, and why (a curve "
                                "that cannot be rebuilt is never replaced by a biased one):"))
            blocks.append(("table", ["metric", "why not shown"],
                           [[metric, text(reason)] for metric, reason in unavailable.items()]))
    if any(data.get("metrics") for data in stages.values()):
        figures["dynamics.png"] = fig.dynamics(stages, STAGE_TITLES, dynamics_mod.METRIC_TITLES, dynamics_mod.PLOTTED)
        blocks.append(("figure", "dynamics.png", "Training curves of every stage on a shared axis of examples seen"))
    return blocks


def _point(point: Any) -> str:
    if isinstance(point, dict) and "per_seed" in point:
        return " / ".join(_point(p) for p in point["per_seed"])
    return f"{num(point[1])} @ {num(point[0])}"


def _efficiency(report: dict[str, Any], figures: dict[str, bytes]) -> list[tuple]:
    blocks: list[tuple] = [("h2", "4. Sample efficiency")]
    result = report["efficiency"]
    curves = result["curves"]
    if not any(len(_first_seed(points)) > 1 for points in curves.values() if isinstance(points, list)) \
            and not report["checkpoints"]:
        blocks.append(("p", "No intermediate checkpoints were evaluated: set checkpoints = true in configs/eval.toml "
                            "and run ./evaluate_comparison.sh; the curves below have only start and end points."))
    blocks.append(("p", f"Accuracy ({result['grader']} grader) of each arm's checkpoints against what training had "
                        f"consumed, on the fair axes: FLOPs, tokens processed (trained + generated) and sequences "
                        f"(an RL prompt with 8 samples is 8 sequences). Totals at a checkpoint are the arm's totals "
                        f"scaled by its share of the examples (an estimate); compute GPU-hours leave out start-up and "
                        f"checkpoint writes. Target accuracy {pct(result['target'])} ({text(result['target_source'])})."))
    rows = []
    for arm, points in curves.items():
        for p in points if isinstance(points, list) else _first_seed(points):
            rows.append([STAGE_TITLES[arm], text(p["label"]), count(p["step"]), count(p["examples"]),
                         count(p.get("sequences")), sci(p.get("tokens_processed")), sci(p.get("flops")),
                         num(p.get("compute_gpu_hours")), pct(p["accuracy"])])
    blocks.append(("table", ["arm", "model", "step", "examples seen", "sequences (est.)", "tokens processed (est.)",
                             "FLOPs (est.)", "compute GPU-hours (est.)", "accuracy"], rows))
    reach = []
    for arm, r in (result.get("to_target") or {}).items():
        if isinstance(r.get("reached"), dict):  # reached in some seeds only: each seed's figures
            hits = r["reached"]["per_seed"]
            reach.append([STAGE_TITLES[arm], f"in {sum(h is True for h in hits)} of {len(hits)} seeds"]
                         + _reach_cells(r))
        elif r.get("reached") is True:
            reach.append([STAGE_TITLES[arm], "yes"] + _reach_cells(r))
        else:
            reach.append([STAGE_TITLES[arm], f"no (best {pct(r.get('best_accuracy'))})"] + ["-"] * 6)
    if reach:
        blocks.append(("table", ["arm", "reached target", "first at", "examples (interpolated)",
                                 "sequences (interpolated)", "tokens processed (interpolated)", "FLOPs (interpolated)",
                                 "compute GPU-hours (interpolated)"], reach))
    if curves:
        figures["efficiency.png"] = fig.efficiency(curves, result["target"], STAGE_TITLES)
        blocks.append(("figure", "efficiency.png", "Accuracy against FLOPs, tokens processed and sequences"))
    return blocks


def _reach_cells(r: dict[str, Any]) -> list[str]:
    return [text(r.get("at")), num(r.get("examples_interpolated")), num(r.get("sequences_interpolated")),
            sci(r.get("tokens_processed_interpolated")), sci(r.get("flops_interpolated")),
            num(r.get("compute_gpu_hours_interpolated"))]


def _diversity(report: dict[str, Any], figures: dict[str, bytes]) -> list[tuple]:
    blocks: list[tuple] = [("h2", "5. Solution diversity")]
    results = report["diversity"]
    sampled = {name: r for name, r in results.items() if r.get("n_per_problem")}
    if sampled:
        ks = sorted({k for r in sampled.values() for k in r["pass_at_k"]["robust"]}, key=int)
        blocks.append(("p", "pass@k: the unbiased estimator over the n sampled completions per problem; maj@k: "
                            "majority vote of the first k answers. Yue et al. (arXiv 2504.13837) found RL ahead at "
                            "small k and the base model catching up at large k: compare the curves' ends."))
        for grader in ("robust", "verifier"):
            blocks.append(("table", ["model", "samples"] + [f"pass@{k}" for k in ks] + [f"maj@{k}" for k in ks],
                           [[name, count(r["n_per_problem"])] + [pct(r["pass_at_k"][grader].get(k)) for k in ks]
                            + [pct(r["maj_at_k"][grader].get(k)) for k in ks] for name, r in sampled.items()]))
            blocks.append(("p", f"Above: {grader} grader."))
            figures[f"pass_at_k_{grader}.png"] = fig.pass_at_k(sampled, grader)
            blocks.append(("figure", f"pass_at_k_{grader}.png", f"pass@k and maj@k against k ({grader} grader)"))
        crossover = report.get("pass_at_k_crossover") or []
        if crossover:
            blocks.append(("table", ["model (against base, robust)", "pass@1 lead", "largest k", "pass@k lead at it",
                                     "base catches up at k"],
                           [[c["model"], pp(c["lead_at_1"]), count(c["k_max"]), pp(c["lead_at_k_max"]),
                             count(c["base_catches_up_at_k"]) if c["base_catches_up_at_k"] is not None
                             else f"not within k = {count(c['k_max'])}"] for c in crossover]))
        blocks.append(("table", ["model", "distinct answers per problem", "problems with ≥2 correct samples",
                                 "distinct-1", "distinct-2", "distinct-3", "distinct-4", "self-BLEU (correct)",
                                 "self-BLEU problems"],
                       [[name, num(r["distinct_answers"]["mean"]), count(r["ngram_diversity"]["problems"])]
                        + [num((r["ngram_diversity"]["distinct_n"] or {}).get(str(n))) for n in range(1, 5)]
                        + [num(r["ngram_diversity"]["self_bleu"]), count(r["ngram_diversity"]["self_bleu_problems"])]
                        for name, r in sampled.items()]))
        blocks.append(("p", "Distinct-n: distinct n-grams over all n-grams among a problem's correct sampled "
                            "solutions (higher = more varied); self-BLEU: mean BLEU-4 of each correct solution against "
                            "the others (higher = more alike). Both over problems with at least two correct samples."))
    else:
        blocks.append(("p", "No sampled completions: set samples above 0 in configs/eval.toml and run "
                            "./evaluate_comparison.sh --force; only greedy lengths are shown."))
    rows = []
    for name, r in results.items():
        for kind in ("greedy", "greedy_correct", "greedy_incorrect", "sampled"):
            s = r["lengths"].get(kind)
            if s:
                rows.append([name, kind, count(s["n"]), num(s["mean"]), num(s["median"]), num(s["p10"]),
                             num(s["p90"]), num(s["max"])])
    blocks.append(("table", ["model", "responses", "n", "mean tokens", "median", "p10", "p90", "max"], rows))
    figures["lengths.png"] = fig.lengths(results)
    blocks.append(("figure", "lengths.png", "Response length distributions"))
    return blocks


def _errors(report: dict[str, Any], several: bool) -> list[tuple]:
    result = report["errors"]
    blocks: list[tuple] = [("h2", "6. Error patterns"),
                           ("p", f"Verdicts of the {text(result['grader'])} grader."
                                 + (" Examples are from the first seed." if several else ""))]
    solved = result["solved_by"]
    if solved["counts"]:
        blocks.append(("table", [f"solved by (of {', '.join(solved['models'])})", "problems"],
                       [[label, count(n)] for label, n in solved["counts"].items()]))
    for pair in result["pairs"]:
        a, b = pair["a"], pair["b"]
        c = pair["counts"]
        blocks.append(("h3", f"{MODEL_TITLES.get(a, a)} against {MODEL_TITLES.get(b, b)}"))
        blocks.append(("table", ["both", f"{a} only", f"{b} only", "neither", "paired problems"],
                       [[count(c["both"]), count(c["a_only"]), count(c["b_only"]), count(c["neither"]),
                         count(pair["n_paired"])]]))
        examples = _first_seed(pair["examples"])
        for group, items in (examples or {}).items():
            for e in _first_seed(items) or []:
                label = {"a_only": f"{a} only", "b_only": f"{b} only"}.get(group, group)
                blocks.append(("p", f"{label}, example {e['id']} (gold {e['gold']}): {e['question']}"))
                blocks.append(("p", f"{a}: {e['response_a']}"))
                blocks.append(("p", f"{b}: {e['response_b']}"))
    blocks.append(("h3", "Failure categories"))
    categories = result["categories"]
    names = list(categories)
    kinds = list(next(iter(categories.values()))["counts"]) if categories else []
    blocks.append(("p", "Each response falls in the first that applies: correct; truncated (the token budget ran "
                        "out); no answer (nothing the grader could extract); arithmetic error (a step 'a op b = c' "
                        "whose result is wrong, error_patterns.py); wrong final answer."))
    blocks.append(("table", ["model"] + kinds, [[n] + [count(categories[n]["counts"][k]) for k in kinds] for n in names]))
    for name in names:
        for kind, items in (_first_seed(categories[name]["examples"]) or {}).items():
            for e in (_first_seed(items) or [])[:1]:
                slips = "; ".join(f"{s['expression']} = {s['stated']} (is {s['correct']})" for s in e.get("slips") or [])
                blocks.append(("p", f"{name}, {kind}, {e['id']} (gold {e['gold']}, extracted {e['extracted']}"
                                    f"{'; ' + slips if slips else ''}): {e['response']}"))
    return blocks


def _robustness(report: dict[str, Any]) -> list[tuple]:
    blocks: list[tuple] = [("h2", "7. Robustness: out-of-distribution sets (greedy)")]
    if not report.get("ood"):
        return blocks + [("p", "No out-of-distribution set was evaluated: list sets in ood_sets of configs/eval.toml "
                               "(gsm8k-platinum, gsm-hard, svamp, gsm-plus) and run ./evaluate_comparison.sh.")]
    blocks.append(("table", ["set", "model", "problems", "accuracy", "95% CI", "GSM8K test", "drop",
                             "drop 95% CI (unpaired)"],
                   [[o["set"], o["model"], count(o["n"]), pct(o["accuracy"]), interval(o["ci95"]),
                     pct(o.get("gsm8k_accuracy")), pp(o.get("drop")), interval(o.get("drop_ci95"))]
                    for o in report["ood"]]))
    return blocks


def _seeds(report: dict[str, Any]) -> list[tuple]:
    blocks: list[tuple] = [("h2", "8. Several seeds")]
    across = report.get("across_seeds")
    if not across:
        return blocks + [("p", f"One seed ({', '.join(map(str, report['seeds']))}). For spread across seeds, run the "
                               "stages with SEED=<n> for more seeds and pass every experiment folder: "
                               "python analyze_results.py --seeds 42,43,44.")]
    seeds_list = report["seeds"]
    blocks.append(("table", ["model", "grader"] + [f"seed {s}" for s in seeds_list] + ["mean", "sd", "min", "max"],
                   [[m["name"], grader] + [pct(v) for v in m["graders"][grader]["accuracy"]["per_seed"]]
                    + [pct(m["graders"][grader]["accuracy"][k]) for k in ("mean", "sd", "min", "max")]
                    for m in report["models"] for grader in ("robust", "verifier")]))
    blocks.append(("p", "Headline tests across seeds: the per-seed paired difference (first minus second on the "
                        "same problems); t: one-sample t-test and t interval over seeds (the headline test: seed-to-"
                        "seed variation is the noise); two-stage bootstrap: resample seeds, then problems within "
                        "each seed. With few seeds the bootstrap cannot see the spread between seeds it did not "
                        f"draw and is too narrow (here {len(seeds_list)} seeds); trust the t interval."))
    blocks.append(("table", ["comparison", "grader"] + [f"seed {s}" for s in seeds_list]
                   + ["mean difference", "sd", "t 95% CI", "t-test p", "two-stage bootstrap 95% CI",
                      "per-seed McNemar p"],
                   [[f"{c['a']} - {c['b']}", c["grader"]] + [pp(d) for d in c["per_seed_difference"]]
                    + [pp(c["mean_difference"]), f"{100 * c['sd_difference']:.1f} pp", interval(c["t_ci95"]),
                       sci(c["t_test_p"]),
                       interval(c["two_stage_bootstrap_ci95"]), ", ".join(sci(p) for p in c["per_seed_mcnemar_p"])]
                    for c in across["comparisons"]]))
    return blocks


def _reproducibility(report: dict[str, Any]) -> list[tuple]:
    blocks: list[tuple] = [("h2", "9. Reproducibility")]
    repro = report["reproducibility"]
    per_seed = repro.get("per_seed") or {str(report["seeds"][0]): repro}
    for seed, info in per_seed.items():
        if len(per_seed) > 1:
            blocks.append(("h3", f"Seed {seed}"))
        if not info["stages"]:
            blocks.append(("p", "No stage manifests found."))
            continue
        if info["same_data"] is not None:
            yes_no = {True: "yes", False: "NO"}
            blocks.append(("p", f"Same prepared data in both stages: {yes_no[info['same_data']]}. Same shared "
                                f"settings fingerprint: {yes_no[info['same_shared_settings']]}."))
        for stage, stage_info in info["stages"].items():
            blocks.append(("h3", f"{STAGE_TITLES[stage]} ({stage_info['manifest_file']})"))
            rows = [[key, num(stage_info[key])] for key in MANIFEST_FIELDS]
            rows += [[f"settings fingerprint {k}", str(v)] for k, v in sorted(stage_info["settings_fingerprints"].items())]
            rows += [[f"setting {k}", v] for k, v in (stage_info.get("settings") or {}).items()]
            rows += [[f"wandb {k}", num(v)] for k, v in stage_info["wandb"].items()]
            rows += [[f"package {k}", v] for k, v in stage_info["packages"].items()]
            rows += [[f"data {k}", v] for k, v in stage_info["data"].items()]
            rows += [[f"host {k}", v] for k, v in stage_info["host"].items()]
            blocks.append(("table", ["field", "value"], rows))
    return blocks


def _weights(result: dict[str, Any] | None, figures: dict[str, bytes], seed: Any = None) -> list[tuple]:
    """Where in the network each method learns: update size, sparsity, rank and agreement by kind of tensor."""
    if not result:
        return [("h2", "Where in the network each method learns"),
                ("p", "Not computed: run `python analyze_results.py --weights`.")]
    arms = list(result["meta"]["arms"])
    pairs = sorted({key for group in result["by_kind"].values() for key in group["pairs"]})
    signal = "signal" in result["meta"]  # weight_diff.json files before the rounding baseline have raw ranks only
    rank_key = "mean_signal_effective_rank" if signal else "mean_effective_rank"
    header = ["kind", "tensors"] + [f"{arm} {m}" for arm in arms for m in ("rel. norm", "changed", "eff. rank")] \
        + [f"cosine {p}" for p in pairs] + [f"overlap {p}" for p in pairs]
    rows = []
    for kind, group in [*result["by_kind"].items(), ("all", result["overall"])]:
        row = [kind, str(group["n_tensors"])]
        for arm in arms:
            a = group["arms"].get(arm, {})
            rank = a.get(rank_key)
            row += [f"{a.get('rel_norm', float('nan')):.3g}", pct(a.get("changed_fraction", float("nan"))),
                    f"{rank:.1f}" if rank is not None else "-"]
        for p in pairs:
            row.append(f"{group['pairs'][p]['cosine']:.3f}" if p in group["pairs"] else "-")
        for p in pairs:
            row.append(pct(group["pairs"][p]["overlap_coefficient"]) if p in group["pairs"] else "-")
        rows.append(row)
    figures["weights_by_layer.png"] = fig.weights(result["by_layer"], arms, rank_key)
    meta = result["meta"]
    shown = (f"Shown: the effective rank of the part of each update above bf16 rounding ({meta['signal']}); the raw "
             "effective and numerical ranks, rounding included, stay in weight_diff.json." if signal else
             "Shown: the raw effective rank, rounding included (this weight_diff.json predates the rounding-noise "
             "baseline: rerun python analyze_results.py --weights).")
    return [
        ("h2", "Where in the network each method learns" + (f" (seed {seed})" if seed is not None else "")),
        ("p", f"Each arm's final weights against the base, tensor by tensor (weights/weight_diff.json). "
              f"Relative norm = ||W_arm - W_base|| / ||W_base|| over the group. Changed: {meta['threshold']}. "
              f"Eff. rank: mean over the group's matrices of the {meta['effective_rank']}. {shown} "
              f"Cosine and overlap: {meta['pairs']}."),
        ("table", header, rows),
        ("figure", "weights_by_layer.png", "Per layer: relative update norm, share of entries changed, effective rank"),
        *[("p", f"Note: {note}") for note in meta.get("notes", [])],
    ]


# ----------------------------------------------------------------------------- rendering


def render_markdown(blocks: list[tuple]) -> str:
    out = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append(f"{'#' * int(kind[1])} {rest[0]}")
        elif kind == "p":
            out.append(rest[0].replace("\n", " "))
        elif kind == "table":
            headers, rows = rest
            cell = lambda value: str(value).replace("|", "\\|").replace("\n", " ")  # noqa: E731
            out.append("\n".join(["| " + " | ".join(map(cell, headers)) + " |",
                                  "|" + "---|" * len(headers)]
                                 + ["| " + " | ".join(map(cell, row)) + " |" for row in rows]))
        elif kind == "figure":
            out.append(f"![{rest[1]}](figures/{rest[0]})")
    return "\n\n".join(out) + "\n"


HTML_STYLE = (
    "body{font-family:sans-serif;max-width:75em;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.2em .5em;"
    "text-align:left;vertical-align:top}th{background:#f2f2f2}img{max-width:100%}p{white-space:pre-wrap}"
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

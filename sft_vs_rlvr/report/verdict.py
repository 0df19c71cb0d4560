"""Still improving? Per trained arm, whether its final number is a plateau or a cut-off.

Two pieces of evidence, both over the last third of the arm's training:
  accuracy   the final model against the evaluated checkpoint nearest two thirds of the way (by examples
             seen), on the same test problems: the paired difference with a paired bootstrap 95% interval
             and the exact McNemar p (stats.py), plus the last checkpoints' accuracies with Wilson intervals
  curve      the arm's own training signal over the last third of its logged steps: for RL the in-loop eval
             pass@1 on test rows where logged (at least MIN_CURVE_POINTS points), else the unbiased solve rate
             (rl_signals.py); an ordinary least-squares slope (scipy.stats.linregress), its two-sided p, and
             the change it implies over the window. SFT logs no reward: its verdict rests on the accuracies.
Verdict (ALPHA = 0.05):
  still improving             accuracy rose significantly over the window
  declining                   accuracy fell significantly
  flat accuracy, rising curve accuracy change not significant, the curve still rising significantly
  plateau                     neither (no change detected)
  rising curve only           no intermediate checkpoint; the curve rises significantly
  unknown                     no intermediate checkpoint and no rising curve
The curve's p ignores the autocorrelation of a training curve, so it is optimistic; it only ever turns a
"plateau" into "flat accuracy, rising curve", never into "still improving".
"""

from __future__ import annotations

from typing import Any

from scipy import stats as sps

from sft_vs_rlvr.stats import mcnemar_exact, paired_bootstrap_diff

ALPHA = 0.05
WINDOW_START = 2 / 3  # the window is the last third of training
MIN_CURVE_POINTS = 4
LAST_POINTS = 3
CURVES = {"rl": ("eval_pass_at_1", "solve_rate"), "sft": ()}


def curve_trend(curve: dict[str, Any]) -> dict[str, Any] | None:
    """Slope of the curve's last third of steps (linregress), its p and the change it implies; None when
    fewer than MIN_CURVE_POINTS points fall there."""
    points = curve["points"]
    first, last = points[0][0], points[-1][0]
    start = first + WINDOW_START * (last - first)
    window = [(x, y) for x, y in points if x >= start]
    if len(window) < MIN_CURVE_POINTS or len({x for x, _ in window}) < 2:
        return None
    fit = sps.linregress([x for x, _ in window], [y for _, y in window])
    change = float(fit.slope) * (window[-1][0] - window[0][0])
    p = float(fit.pvalue)
    return {"key": curve["key"], "from_step": window[0][0], "to_step": window[-1][0], "n_points": len(window),
            "slope_per_step": float(fit.slope), "change": change, "p": p, "rising": change > 0 and p < ALPHA}


def _window_start(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The evaluated point (not the final, not the starting model) nearest two thirds of the way."""
    total = points[-1]["examples"]
    inner = [p for p in points[:-1] if p["examples"] and p["examples"] > 0]
    if not total or not inner:
        return None
    return min(inner, key=lambda p: abs(p["examples"] - WINDOW_START * total))


def arm_verdict(points: list[dict[str, Any]], verdicts: dict[str, dict[str, bool]],
                intervals: dict[str, list[float]], metrics: dict[str, Any], rl: bool,
                bootstrap: dict[str, Any]) -> dict[str, Any]:
    """The verdict of one arm. points: its sample-efficiency curve (start model, checkpoints, final model) in
    order of examples; verdicts and intervals: per point label, its per-problem verdicts and Wilson interval."""
    out: dict[str, Any] = {"last_points": [{"label": p["label"], "examples": p["examples"],
                                            "accuracy": p["accuracy"], "ci95": intervals.get(p["label"])}
                                           for p in points[-LAST_POINTS:]], "accuracy": None, "curve": None}
    start = _window_start(points) if points else None
    if start is not None and start["label"] in verdicts and points[-1]["label"] in verdicts:
        final, earlier = verdicts[points[-1]["label"]], verdicts[start["label"]]
        common = [problem for problem in final if problem in earlier]
        a, b = [final[i] for i in common], [earlier[i] for i in common]
        difference, lo, hi = paired_bootstrap_diff(a, b, bootstrap["n_boot"], bootstrap["seed"], bootstrap["level"])
        p = mcnemar_exact(sum(x and not y for x, y in zip(a, b)), sum(y and not x for x, y in zip(a, b)))
        out["accuracy"] = {"from": start["label"], "from_examples": start["examples"], "to": points[-1]["label"],
                           "to_examples": points[-1]["examples"], "n_paired": len(common), "change": difference,
                           "change_ci95": [lo, hi], "mcnemar_p": p}
    for metric in CURVES["rl" if rl else "sft"]:
        if metric in metrics and (trend := curve_trend(metrics[metric])):
            out["curve"] = {"metric": metric, **trend}
            break
    accuracy, curve = out["accuracy"], out["curve"]
    rising = bool(curve and curve["rising"])
    if accuracy is None:
        out["verdict"] = "rising curve only" if rising else "unknown"
        out["reason"] = "no intermediate checkpoint was evaluated" + (
            "; the training curve still rises" if rising else "")
    elif accuracy["mcnemar_p"] < ALPHA and accuracy["change"] > 0:
        out["verdict"], out["reason"] = "still improving", "accuracy rose over the last third"
    elif accuracy["mcnemar_p"] < ALPHA and accuracy["change"] < 0:
        out["verdict"], out["reason"] = "declining", "accuracy fell over the last third"
    elif rising:
        out["verdict"] = "flat accuracy, rising curve"
        out["reason"] = "no accuracy change detected over the last third, but the training curve still rises"
    else:
        out["verdict"] = "plateau"
        out["reason"] = "no change detected over the last third" + (
            "" if curve else " (accuracy only: no training curve to read)")
    return out

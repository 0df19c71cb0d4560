"""The Findings paragraph at the top of the report: only what the numbers back, with the caveats that apply.

Built from the finished report dict (one seed or several), as structured claims the document words:
  claims    one per paired comparison of the headline grader, in COMPARISONS order: the effect (a - b), its
            95% interval and its test (one seed: paired bootstrap interval and exact McNemar p on the test
            problems; several seeds: the t interval and t-test over the per-seed differences, with how many
            seeds' McNemar tests agree). "significant" needs p < ALPHA and an interval that excludes 0; a
            claim that is not is worded "no difference detected", never as a ranking. Each claim also carries
            the other grader's figures and whether they agree (same direction, also significant).
  caveats   one seed (the intervals cover which test problems were drawn, not training randomness); arms
            still improving at the end (verdict.py); unequal optimization (optimizer updates, summed learning
            rate); unequal data exposure (epochs) where it was not held equal; the number of uncorrected tests.
  design    per arm what the comparison holds equal (training rows, epochs) and what it does not (updates,
            summed learning rate, sequences, tokens processed, FLOPs), for the headline's statement.
Every number here is copied from elsewhere in the report dict, so report.json holds each one twice at most.
"""

from __future__ import annotations

from typing import Any

from sft_vs_rlvr.report.seeds import mean_of

ALPHA = 0.05
STILL_RISING = ("still improving", "flat accuracy, rising curve", "rising curve only")
DESIGN_KEYS = ("training_rows", "epochs", "prompts_seen", "sequences_trained", "optimizer_updates", "lr_sum",
               "tokens_processed", "flops")


def _significant(difference: float | None, ci: list | None, p: float | None) -> bool:
    if difference is None or not ci or p is None:
        return False
    lo, hi = (mean_of(c) for c in ci)
    return p < ALPHA and (lo > 0 or hi < 0)


def _one_seed(report: dict[str, Any], a: str, b: str, grader: str) -> dict[str, Any] | None:
    c = next((c for c in report["comparisons"] if (c["a"], c["b"], c["grader"]) == (a, b, grader)), None)
    if c is None:
        return None
    return {"grader": grader, "difference": c["difference"], "ci95": c["bootstrap_ci95"], "p": c["mcnemar_p"],
            "n": c["n_paired"], "test": "McNemar", "interval": "paired bootstrap",
            "significant": _significant(c["difference"], c["bootstrap_ci95"], c["mcnemar_p"])}


def _across_seeds(report: dict[str, Any], a: str, b: str, grader: str) -> dict[str, Any] | None:
    c = next((c for c in report["across_seeds"]["comparisons"] if (c["a"], c["b"], c["grader"]) == (a, b, grader)),
             None)
    if c is None:
        return None
    agreeing = sum(p < ALPHA for p in c["per_seed_mcnemar_p"])
    return {"grader": grader, "difference": c["mean_difference"], "ci95": c["t_ci95"], "p": c["t_test_p"],
            "n": c["seeds"], "test": "t-test over seeds", "interval": "t", "seeds_significant": agreeing,
            "significant": _significant(c["mean_difference"], c["t_ci95"], c["t_test_p"])}


def _claims(report: dict[str, Any], grader: str, other: str) -> list[dict[str, Any]]:
    several = bool((report.get("across_seeds") or {}).get("comparisons"))
    figures = _across_seeds if several else _one_seed
    pairs = list(dict.fromkeys((c["a"], c["b"]) for c in report["comparisons"]))
    claims = []
    for a, b in pairs:
        main, second = figures(report, a, b, grader), figures(report, a, b, other)
        if main is None:
            continue
        # The other grader agrees when it finds no difference either, or the same significant direction.
        agrees = bool(second and second["significant"] == main["significant"] and (
            not main["significant"] or (mean_of(second["difference"]) > 0) == (mean_of(main["difference"]) > 0)))
        claims.append({"a": a, "b": b, **main, "other": second, "other_agrees": agrees})
    return claims


def _design(budgets: dict[str, Any]) -> dict[str, Any]:
    arms = {arm: {key: b.get(key) for key in DESIGN_KEYS} for arm, b in budgets.items()}
    exposure = {(mean_of(a["training_rows"]), mean_of(a["epochs"])) for a in arms.values()}
    updates = {mean_of(a["optimizer_updates"]) for a in arms.values()}
    return {"arms": arms, "equal_exposure": len(exposure) == 1 if arms else None,
            "equal_updates": len(updates) == 1 if arms else None}


def analyze(report: dict[str, Any]) -> dict[str, Any]:
    """{"grader", "alpha", "claims", "caveats", "design"} for the Findings paragraph and the headline."""
    grader = report["headline_grader"]
    other = next(g for g in ("robust", "verifier") if g != grader)
    claims = _claims(report, grader, other)
    design = _design(report.get("budgets") or {})
    caveats: list[dict[str, Any]] = []
    seeds = report.get("seeds") or [report.get("seed")]  # one experiment's analysis holds "seed"
    if len(seeds) == 1:
        caveats.append({"kind": "one_seed", "seed": seeds[0]})
    for arm, v in (report.get("verdicts") or {}).items():
        states = v["verdict"]["per_seed"] if isinstance(v["verdict"], dict) else [v["verdict"]]
        rising = sum(state in STILL_RISING for state in states)
        if rising:
            caveats.append({"kind": "still_improving", "arm": arm, "verdict": v["verdict"], "seeds_rising": rising,
                            "seeds": len(states), "accuracy": v.get("accuracy"), "curve": v.get("curve")})
    if design["arms"] and not design["equal_updates"]:
        caveats.append({"kind": "optimization", "arms": {arm: {"optimizer_updates": a["optimizer_updates"],
                                                               "lr_sum": a["lr_sum"]}
                                                         for arm, a in design["arms"].items()}})
    if design["equal_exposure"] is False:
        caveats.append({"kind": "exposure", "arms": {arm: {"epochs": a["epochs"], "training_rows": a["training_rows"]}
                                                     for arm, a in design["arms"].items()}})
    tests = len(claims) * 2
    if tests > 2:
        caveats.append({"kind": "multiplicity", "tests": tests, "alpha": ALPHA})
    return {"grader": grader, "other_grader": other, "alpha": ALPHA, "claims": claims, "caveats": caveats,
            "design": design}

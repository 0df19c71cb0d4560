"""Several seeds of one experiment: every number as mean and spread, and a headline test across seeds.

Each seed is its own experiment folder (`SEED=43 ./experiment_sft_llama8b.sh` writes `<profile>-seed43`); the
report analyses each one alone, then:
  aggregate()          walks the per-seed report dicts in parallel; every number becomes
                       {"mean", "sd" (ddof=1; 0 for one seed), "min", "max", "per_seed", "across_seeds": n};
                       equal strings stay, differing ones become {"per_seed": [...]}; lists of different
                       lengths (curves logged at different steps, example lists) keep each seed's own list.
  paired_across_seeds  the headline test with seeds as the unit of replication: the mean over seeds of the
                       per-seed paired difference (a - b on the same problems), with
                       - a t interval and a one-sample t-test of the per-seed differences
                         (scipy.stats.t.interval, scipy.stats.ttest_1samp): seed-to-seed variation is the noise;
                       - a two-stage bootstrap interval (numpy): resample seeds, then problems within each seed,
                         so both sources of variation count;
                       - each seed's exact McNemar p, for reference (stats.mcnemar_exact).
Checks before anything is written: the same settings in every seed but the seed itself, each arm present
in every seed (a seed missing in one arm names the missing file), no seed twice.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import stats as sps

from sft_vs_rlvr.errors import UserError
from sft_vs_rlvr.stats import mcnemar_exact

AGGREGATE_KEYS = ("mean", "sd", "min", "max", "per_seed", "across_seeds")
PER_SEED_KEYS = {"examples"}  # example responses differ by seed: each seed's list is kept whole


def is_aggregate(value: Any) -> bool:
    return isinstance(value, dict) and "across_seeds" in value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _summary(values: list[float]) -> dict[str, Any]:
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "sd": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
            "min": float(array.min()), "max": float(array.max()), "per_seed": list(values),
            "across_seeds": len(values)}


def aggregate(values: list[Any]) -> Any:
    """Merge the same field of several per-seed reports (see the module docstring)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(_number(v) for v in present) and len(present) == len(values):
        return _summary(values)
    if all(isinstance(v, dict) for v in present) and len(present) == len(values):
        keys = list(dict.fromkeys(k for v in values for k in v))
        return {k: {"per_seed": [v.get(k) for v in values]} if _kept_per_seed(k, values)
                else aggregate([v.get(k) for v in values]) for k in keys}
    if all(isinstance(v, list) for v in present) and len(present) == len(values) \
            and len({len(v) for v in values}) == 1:
        return [aggregate(list(items)) for items in zip(*values)]
    if all(v == present[0] for v in present) and len(present) == len(values):
        return present[0]
    return {"per_seed": values}


def _kept_per_seed(key: str, values: list[dict[str, Any]]) -> bool:
    """Example lists (not a count that happens to share the name, like examples seen) stay whole per seed."""
    return key in PER_SEED_KEYS and any(isinstance(v.get(key), (dict, list)) for v in values)


def mean_of(value: Any) -> Any:
    """The mean of an aggregate, or the value itself (for figures, which draw means)."""
    return value["mean"] if is_aggregate(value) else value


def _bootstrap_means(diff: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    means = np.empty(n_boot)
    for start in range(0, n_boot, 1000):
        size = min(1000, n_boot - start)
        means[start:start + size] = diff[rng.integers(0, len(diff), size=(size, len(diff)))].mean(axis=1)
    return means


def paired_across_seeds(per_seed: Sequence[tuple[Sequence[bool], Sequence[bool]]], n_boot: int = 10000,
                        seed: int = 42, level: float = 0.95) -> dict[str, Any]:
    """Headline test of a - b with seeds as replicates; per_seed = [(verdicts a, verdicts b) paired by problem]."""
    diffs = np.array([np.mean(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)) for a, b in per_seed])
    k = len(diffs)
    out: dict[str, Any] = {"seeds": k, "per_seed_difference": diffs.tolist(), "mean_difference": float(diffs.mean()),
                           "sd_difference": float(diffs.std(ddof=1)) if k > 1 else 0.0}
    out["per_seed_mcnemar_p"] = [
        mcnemar_exact(sum(x and not y for x, y in zip(a, b)), sum(y and not x for x, y in zip(a, b)))
        for a, b in per_seed]
    if k > 1 and out["sd_difference"] > 0:
        interval = sps.t.interval(level, k - 1, loc=diffs.mean(), scale=sps.sem(diffs))
        out["t_ci95"] = [float(interval[0]), float(interval[1])]
        out["t_test_p"] = float(sps.ttest_1samp(diffs, 0.0).pvalue)
    else:
        out["t_ci95"], out["t_test_p"] = None, None  # one seed, or identical differences: no spread to test
    rng = np.random.default_rng(seed)
    per_seed_boot = np.stack([_bootstrap_means(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), n_boot, rng)
                              for a, b in per_seed])
    chosen = rng.integers(0, k, size=(n_boot, k))  # resample seeds, then take each one's problem resample
    replicate = per_seed_boot[chosen, np.arange(n_boot)[:, None]].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(replicate, [alpha, 1 - alpha])
    out["two_stage_bootstrap_ci95"] = [float(lo), float(hi)]
    out["bootstrap"] = {"n_boot": n_boot, "seed": seed, "level": level}
    return out


def settings_differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two resolved settings, the seed and output root excepted."""
    ignored = {"shared.seed", "shared.output_root"}
    out = []
    for key in sorted(set(a) | set(b)):
        path = f"{prefix}{key}"
        if path in ignored:
            continue
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += settings_differences(va, vb, f"{path}.")
        elif va != vb:
            out.append(f"{path} ({va!r} vs {vb!r})")
    return out


def check_consistent(seeds: list[int], present: list[dict[str, str]], settings: list[dict[str, Any] | None],
                     where: list[str]) -> None:
    """Refuse a seed set that cannot be compared; present[i] maps each model/stage name to its file in seed i."""
    if len(set(seeds)) != len(seeds):
        twice = sorted({s for s in seeds if seeds.count(s) > 1})
        raise UserError(f"seed {twice[0]} appears twice ({', '.join(where)}): pass each seed's folder once")
    names = list(dict.fromkeys(name for p in present for name in p))
    for name in names:
        have = [s for s, p in zip(seeds, present) if name in p]
        for s, p, folder in zip(seeds, present, where):
            if name not in p:
                example = next(q[name] for q in present if name in q)
                missing = example.split("/", 1)[1] if "/" in example else example
                raise UserError(f"{folder}/{missing} is missing: seeds {', '.join(map(str, have))} have {name} but "
                                f"seed {s} does not; run that stage for seed {s} (SEED={s}) or leave seed {s} out")
    reference = next(((s, x, w) for s, x, w in zip(seeds, settings, where) if x), None)
    for x, folder in zip(settings, where):
        if reference and x and x is not reference[1]:
            differences = settings_differences(reference[1], x)
            if differences:
                raise UserError(f"{folder} was run with other settings than {reference[2]}: "
                                f"{'; '.join(differences[:3])}; seeds are only comparable with identical settings")


def seed_of(experiment_id: str | None, settings: dict[str, Any] | None) -> int | None:
    if settings and isinstance((settings.get("shared") or {}).get("seed"), int):
        return settings["shared"]["seed"]
    if experiment_id and "-seed" in experiment_id:
        digits = experiment_id.split("-seed", 1)[1].split("-", 1)[0]
        return int(digits) if digits.isdigit() else None
    return None

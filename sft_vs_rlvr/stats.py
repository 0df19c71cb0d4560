"""Statistics for accuracy comparisons on the same test problems.

Which library does what:
  wilson_interval        scipy.stats.binomtest(k, n).proportion_ci(method="wilson") (the interval the
                         evaluator writes into eval/*_results.json, so the report recomputes the same one)
  mcnemar_exact          scipy.stats.binomtest(b, b + c, 0.5): McNemar's exact test is a two-sided
                         binomial test on the discordant pairs
  paired_bootstrap_diff  numpy only (default_rng(seed)): percentile interval of the mean paired
                         difference, resampling problems with replacement
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats

# Resample this many bootstrap replicates at a time, so memory stays at a few MB for any test set size.
_BOOTSTRAP_CHUNK = 1000


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials.

    n == 0 raises ValueError: an accuracy over no problems is a bug upstream, and NaN would not
    survive JSON.
    """
    if n <= 0:
        raise ValueError(f"wilson_interval needs n > 0 trials, got n={n}")
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b (only A right) and c (only B right).

    With no discordant pairs there is no evidence of a difference: p = 1.0.
    """
    if b + c == 0:
        return 1.0
    return float(stats.binomtest(b, b + c, 0.5).pvalue)


def paired_bootstrap_diff(
    a: Sequence[bool], b: Sequence[bool], n_boot: int = 10000, seed: int = 42, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean of a - b (accuracy of A minus accuracy of B on the same problems) and its percentile interval.

    a[i] and b[i] are the verdicts on the same problem i; problems are resampled as pairs, so the
    correlation between the two models is kept.
    """
    if len(a) != len(b) or not len(a):
        raise ValueError(f"paired_bootstrap_diff needs two non-empty lists of equal length, got {len(a)} and {len(b)}")
    diff = np.asarray(a, dtype=np.int8) - np.asarray(b, dtype=np.int8)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, _BOOTSTRAP_CHUNK):
        size = min(_BOOTSTRAP_CHUNK, n_boot - start)
        indices = rng.integers(0, len(diff), size=(size, len(diff)))
        means[start : start + size] = diff[indices].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(diff.mean()), float(lo), float(hi)

"""Statistics wrappers against closed forms, brute force and scipy called directly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from sft_vs_rlvr.stats import mcnemar_exact, paired_bootstrap_diff, wilson_interval


def _wilson_closed_form(k: int, n: int, level: float) -> tuple[float, float]:
    z = sps.norm.ppf(1 - (1 - level) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 50), (37, 200), (200, 200), (660, 1319), (1, 1319)])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_wilson_matches_closed_form_and_scipy(k, n, level):
    lo, hi = wilson_interval(k, n, level)
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    assert (lo, hi) == (ref.low, ref.high)
    assert (lo, hi) == pytest.approx(_wilson_closed_form(k, n, level), abs=1e-12)
    assert 0 <= lo <= k / n <= hi <= 1


def test_wilson_rejects_empty():
    with pytest.raises(ValueError, match="n > 0"):
        wilson_interval(0, 0)


def _mcnemar_brute_force(b: int, c: int) -> float:
    n = b + c
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


@pytest.mark.parametrize("b,c", [(0, 1), (1, 0), (3, 3), (5, 0), (17, 12), (0, 30), (40, 61), (100, 140)])
def test_mcnemar_matches_brute_force(b, c):
    assert mcnemar_exact(b, c) == pytest.approx(_mcnemar_brute_force(b, c), rel=1e-9)
    assert mcnemar_exact(b, c) == pytest.approx(sps.binomtest(b, b + c, 0.5).pvalue, rel=1e-12)
    assert mcnemar_exact(b, c) == mcnemar_exact(c, b)


def test_mcnemar_no_discordant_pairs_is_one():
    assert mcnemar_exact(0, 0) == 1.0


def _pairs(n: int, seed: int) -> tuple[list[bool], list[bool]]:
    rng = np.random.default_rng(seed)
    a = rng.random(n) < 0.55
    b = np.where(rng.random(n) < 0.7, a, rng.random(n) < 0.4)  # correlated, as two models on one test set
    return a.tolist(), b.tolist()


def test_bootstrap_point_and_determinism():
    a, b = _pairs(300, 1)
    diff, lo, hi = paired_bootstrap_diff(a, b)
    assert diff == pytest.approx((sum(a) - sum(b)) / len(a), abs=1e-15)
    assert lo <= diff <= hi
    assert paired_bootstrap_diff(a, b) == (diff, lo, hi)
    # Quantiles of a discrete distribution often coincide across seeds; a small n_boot shows the seed is used.
    assert paired_bootstrap_diff(a, b, n_boot=30, seed=7) != paired_bootstrap_diff(a, b, n_boot=30, seed=8)


def test_bootstrap_matches_brute_force_and_scipy():
    a, b = _pairs(400, 2)
    diff, lo, hi = paired_bootstrap_diff(a, b, n_boot=20000)
    # Brute force: one resample at a time, a different random stream, so agreement is up to Monte Carlo noise.
    rng = np.random.default_rng(123)
    d = np.array(a, dtype=float) - np.array(b, dtype=float)
    means = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(20000)]
    assert (lo, hi) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])), abs=0.006)
    ref = sps.bootstrap((np.array(a, float), np.array(b, float)), lambda x, y: np.mean(x - y), paired=True,
                        vectorized=False, n_resamples=5000, method="percentile", random_state=0).confidence_interval
    assert (lo, hi) == pytest.approx((ref.low, ref.high), abs=0.01)
    # and the normal approximation of a paired difference
    se = d.std(ddof=1) / math.sqrt(len(d))
    assert (lo, hi) == pytest.approx((diff - 1.96 * se, diff + 1.96 * se), abs=0.01)


def test_bootstrap_level_widens_interval():
    a, b = _pairs(200, 3)
    _, lo90, hi90 = paired_bootstrap_diff(a, b, level=0.90)
    _, lo99, hi99 = paired_bootstrap_diff(a, b, level=0.99)
    assert lo99 < lo90 and hi90 < hi99


def test_bootstrap_identical_models_has_zero_interval():
    a = [True, False, True, True, False] * 10
    assert paired_bootstrap_diff(a, a) == (0.0, 0.0, 0.0)


def test_bootstrap_rejects_unpaired():
    with pytest.raises(ValueError, match="equal length"):
        paired_bootstrap_diff([True, False], [True])
    with pytest.raises(ValueError, match="non-empty"):
        paired_bootstrap_diff([], [])

"""pass@k against brute force over every subset; maj@k on hand-made votes."""

from __future__ import annotations

import itertools
import random
from fractions import Fraction

import pytest

from sft_vs_rlvr.evaluate import passk


def brute_force_pass_at_k(flags: list[bool], k: int) -> float:
    subsets = list(itertools.combinations(range(len(flags)), k))
    return sum(any(flags[i] for i in subset) for subset in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_unbiased_estimator_equals_the_fraction_of_k_subsets_with_a_correct_sample(n):
    rng = random.Random(n)
    for _ in range(20):
        flags = [rng.random() < 0.3 for _ in range(n)]
        for k in range(1, n + 1):
            assert passk.pass_at_k(n, sum(flags), k) == pytest.approx(brute_force_pass_at_k(flags, k))


def test_ks_are_powers_of_two_up_to_n():
    assert passk.ks(16) == [1, 2, 4, 8, 16] and passk.ks(6) == [1, 2, 4, 6] and passk.ks(1) == [1]


def test_majority_vote_counts_answers_as_numbers_and_ignores_unanswered():
    seven, eight = Fraction(7), Fraction(8)
    assert passk.majority_correct([seven, eight, eight, None], [True, False, False, False], 3) is False
    assert passk.majority_correct([seven, None, None, eight], [True, False, False, False], 3) is True
    assert passk.majority_correct([eight, seven], [False, True], 2) is False  # tie: the answer seen first
    assert passk.majority_correct([None, None], [False, False], 2) is False


def test_curves_average_over_problems_and_refuse_ragged_input():
    problems = [([True, False], [Fraction(1), Fraction(2)]), ([False, False], [Fraction(3), None])]
    out = passk.curves(problems)
    assert out["pass@k"] == {"1": pytest.approx(0.25), "2": pytest.approx(0.5)}
    assert out["maj@k"] == {"1": 0.5, "2": 0.5}
    with pytest.raises(ValueError):
        passk.curves([([True], [None]), ([True, False], [None, None])])
    with pytest.raises(ValueError):
        passk.pass_at_k(2, 3, 1)

"""pass@k and maj@k over n sampled responses per problem.

pass@k: the unbiased estimator of Chen et al. 2021 (arXiv 2107.03374, eq. 1): with n samples of which c
are correct, pass@k = 1 - C(n - c, k) / C(n, k), the chance that k of the n samples drawn without
replacement contain a correct one; averaged over problems. k runs over 1, 2, 4, ..., n.
maj@k: majority vote over the final answers of the first k samples (answers compared as numbers by the
robust grader's normaliser; unanswered samples do not vote; a tie goes to the answer seen first); the
problem counts when the winning answer is correct. Reported for the same k.
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from math import comb
from typing import Sequence


def ks(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself when it is not a power of two."""
    out, k = [], 1
    while k <= n:
        out.append(k)
        k *= 2
    if n and out[-1] != n:
        out.append(n)
    return out


def pass_at_k(n: int, c: int, k: int) -> float:
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    return 1.0 - comb(n - c, k) / comb(n, k)


def majority_correct(answers: Sequence[Fraction | None], correct: Sequence[bool], k: int) -> bool:
    """Whether the majority answer among the first k samples is a correct one."""
    votes = Counter(a for a in answers[:k] if a is not None)
    if not votes:
        return False
    best = max(votes.values())
    winner = next(a for a in answers[:k] if a is not None and votes[a] == best)
    return any(c for a, c in zip(answers[:k], correct[:k]) if a == winner)


def curves(per_problem: Sequence[tuple[Sequence[bool], Sequence[Fraction | None]]]) -> dict[str, dict[str, float]]:
    """{"pass@k": {k: mean}, "maj@k": {k: mean}} over problems given (correct flags, answers) per problem."""
    if not per_problem:
        return {"pass@k": {}, "maj@k": {}}
    n = len(per_problem[0][0])
    if any(len(flags) != n for flags, _ in per_problem):
        raise ValueError("every problem needs the same number of samples")
    out: dict[str, dict[str, float]] = {"pass@k": {}, "maj@k": {}}
    for k in ks(n):
        out["pass@k"][str(k)] = sum(pass_at_k(n, sum(flags), k) for flags, _ in per_problem) / len(per_problem)
        out["maj@k"][str(k)] = sum(majority_correct(answers, flags, k) for flags, answers in per_problem) / len(per_problem)
    return out

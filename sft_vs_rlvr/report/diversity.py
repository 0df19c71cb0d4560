"""Solution diversity of one model, from its per-sample rows (eval/<model>_samples.jsonl).

RLVR is suspected of narrowing what a model writes (higher pass@1, flatter pass@k); these numbers let the
report show it or not: pass@k / maj@k curves, how many distinct answers a problem gets, how alike the
correct solutions of one problem are, and how long responses are.

Definitions (the report quotes them):
- pass@k, maj@k: `passk.curves`, fed exactly as evaluation._sampled_summary feeds it (answers =
  grading.parse_number(extracted or ""), the same answers for both graders), so the numbers agree with
  eval/<model>_results.json.
- distinct answers: the number of distinct non-null `extracted` strings among a problem's samples
  (evaluation._sampled_summary's distinct_answers_mean is its mean).
- tokens: re.findall(r"\\w+|[^\\w\\s]", response.lower()), words and single punctuation marks.
- distinct-n (n = 1..4): over the correct sampled solutions (robust grader) of a problem with at least 2
  of them, (distinct n-grams across those solutions) / (n-grams in them, counted with repeats; an n-gram
  never spans two solutions); the mean over such problems (a problem whose solutions hold no n-gram of
  that order is left out of that order's mean).
- self-BLEU: for the same problems, each correct solution is scored by BLEU-4 against the problem's other
  correct solutions as references, the scores averaged per problem, then over problems; on a 0-1 scale.
  Only the first SELF_BLEU_MAX_PROBLEMS qualifying problems in row order are scored (it is the costly part).
  BLEU-4 of hypothesis h against references R (sacrebleu's sentence_bleu with smooth_method="add-k",
  smooth_value=1, tokenize="none", use_effective_order=False, divided by 100, computes the same number):
    m_n = sum over n-grams g of h of min(count_h(g), max over r in R of count_r(g))   (clipped matches)
    t_n = number of n-grams in h
    p_1 = m_1 / t_1;  p_n = (m_n + 1) / (t_n + 1) for n = 2..4   (Lin & Och 2004 add-one smoothing)
    BP = 1 if c >= r else exp(1 - r / c)   (c = len(h); r = the reference length closest to c, the shorter
         one on a tie; BP = 0 when c = 0)
    BLEU = 0 when m_1 = 0, else BP * exp((log p_1 + log p_2 + log p_3 + log p_4) / 4).
- lengths: `response_tokens` (generated tokens, EOS included); percentiles by numpy's default (linear)
  method; every histogram of one model has the same 20 equal bins from 0 to the longest response of that
  model (greedy and sampled), so they can be drawn on one axis.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from itertools import chain
from typing import Any

import numpy as np

from sft_vs_rlvr.evaluate import grading, passk

SELF_BLEU_MAX_PROBLEMS = 300
NGRAM_ORDERS = (1, 2, 3, 4)
HISTOGRAM_BINS = 20

_TOKEN = re.compile(r"\w+|[^\w\s]")
# The same tokens for ASCII text, ~1.5x faster: ASCII \s lacks the separators \x1c-\x1f that Unicode \s has.
_ASCII_TOKEN = re.compile(r"\w+|[^\w\s\x1c-\x1f]", re.ASCII)
_PACK_LIMIT = 2 ** 63  # n-gram ids are packed into int64


def tokenize(text: str) -> list[str]:
    """Words and single punctuation marks, lower-cased: the unit of distinct-n and BLEU."""
    text = text.lower()
    return (_ASCII_TOKEN if text.isascii() else _TOKEN).findall(text)


def analyze(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every diversity number of one model, JSON-ready (see the module docstring for definitions)."""
    with_samples = [row for row in rows if row.get("samples")]
    if with_samples and len(with_samples) != len(rows):
        raise ValueError(f"{len(rows) - len(with_samples)} of {len(rows)} rows have no samples: a samples file "
                         "is sampled for every problem or for none")
    return {
        "n_problems": len(rows),
        "n_per_problem": len(with_samples[0]["samples"]) if with_samples else None,
        **_curves(with_samples),
        "distinct_answers": distinct_answers(with_samples),
        "ngram_diversity": ngram_diversity([[c["response"] for c in row["samples"] if c["correct"]]
                                            for row in with_samples]),
        "lengths": lengths(rows),
    }


def _curves(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """pass@k and maj@k per grader, computed as evaluation._sampled_summary computes them."""
    out: dict[str, dict[str, dict[str, float]]] = {"pass_at_k": {}, "maj_at_k": {}}
    if not rows:
        return out
    # Each distinct answer value becomes a small int: majority votes only compare answers, and hashing ints
    # is ~10x faster than hashing Fractions; the curves are unchanged.
    ids: dict[Fraction, int] = {}
    answers = [[None if value is None else ids.setdefault(value, len(ids))
                for value in (grading.parse_number(c["extracted"] or "") for c in row["samples"])] for row in rows]
    for grader, key in (("robust", "correct"), ("verifier", "verifier_correct")):
        curves = passk.curves([([c[key] for c in row["samples"]], problem_answers)
                               for row, problem_answers in zip(rows, answers)])
        out["pass_at_k"][grader] = curves["pass@k"]
        out["maj_at_k"][grader] = curves["maj@k"]
    return out


def distinct_answers(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """{"mean", "histogram": {"<distinct count>": problems}}; mean None without samples."""
    counts = [len({c["extracted"] for c in row["samples"] if c["extracted"] is not None}) for row in rows]
    histogram = Counter(counts)
    return {"mean": sum(counts) / len(counts) if counts else None,
            "histogram": {str(k): histogram[k] for k in sorted(histogram)}}


def ngram_diversity(correct_per_problem: Sequence[Sequence[str]]) -> dict[str, Any]:
    """distinct-n and self-BLEU over problems with at least 2 correct solutions (texts, per problem)."""
    ratios: dict[int, list[float]] = {n: [] for n in NGRAM_ORDERS}
    bleus: list[float] = []
    vocab: dict[str, int] = {}
    qualifying = 0
    for texts in correct_per_problem:
        if len(texts) < 2:
            continue
        qualifying += 1
        tokenized = {text: tokenize(text) for text in dict.fromkeys(texts)}  # repeated samples are common
        token_lists = [tokenized[text] for text in texts]
        grams = _ngram_ids(token_lists, vocab)
        for n, (ids, _) in zip(NGRAM_ORDERS, grams):
            if len(ids):
                ratios[n].append(_count_distinct(ids) / len(ids))
        if len(bleus) < SELF_BLEU_MAX_PROBLEMS:
            bleus.append(float(self_bleu_scores(grams, np.array([len(t) for t in token_lists])).mean()))
    return {
        "distinct_n": {str(n): (sum(values) / len(values) if values else None) for n, values in ratios.items()},
        "problems": qualifying,
        "self_bleu": sum(bleus) / len(bleus) if bleus else None,
        "self_bleu_problems": len(bleus),
    }


def _count_distinct(ids: np.ndarray) -> int:
    """len(np.unique(ids)), by sorting: numpy 2's hash-based np.unique is ~20x slower on small arrays."""
    ordered = np.sort(ids)
    return int(np.count_nonzero(ordered[1:] != ordered[:-1])) + 1 if len(ordered) else 0


def _ngram_ids(token_lists: list[list[str]], vocab: dict[str, int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per order n: (an id per n-gram, equal ids exactly for equal n-grams; the solution it belongs to).

    Vectorised, no Python work per n-gram: token ids are made dense within the problem (V of them) and an
    n-gram's id is its tokens read as a number in base V; where V**4 would overflow int64 (> 55,000
    distinct tokens in one problem) the (n-1)-gram prefix is re-ranked at each order instead. `vocab`
    (token -> id) is shared across calls.
    """
    flat = list(chain.from_iterable(token_lists))
    for token in set(flat).difference(vocab):
        vocab[token] = len(vocab)
    _, tokens = np.unique(np.fromiter(map(vocab.__getitem__, flat), dtype=np.int64, count=len(flat)),
                          return_inverse=True)
    tokens = tokens.astype(np.int64)
    base = int(tokens.max()) + 1 if len(tokens) else 1
    solution = np.repeat(np.arange(len(token_lists)), [len(t) for t in token_lists])
    out = [(tokens, solution)]
    prefix = tokens
    for n in NGRAM_ORDERS[1:]:
        if base ** NGRAM_ORDERS[-1] >= _PACK_LIMIT:
            _, prefix = np.unique(prefix, return_inverse=True)  # dense again, below len(tokens) <= base
        prefix = prefix[:-1] * base + tokens[n - 1:]
        inside = solution[: len(prefix)] == solution[n - 1:]  # windows that stay within one solution
        out.append((prefix[inside], solution[: len(prefix)][inside]))
    return out


def self_bleu_scores(grams: list[tuple[np.ndarray, np.ndarray]], lengths: np.ndarray) -> np.ndarray:
    """BLEU-4 of each solution against all the others (module docstring), from `_ngram_ids` output."""
    m = len(lengths)
    log_precisions = np.zeros(m)
    unigram_matches = None
    for n, (ids, solution) in zip(NGRAM_ORDERS, grams):
        _, compact = np.unique(ids, return_inverse=True)
        width = int(compact.max()) + 1 if len(compact) else 1
        counts = np.bincount(solution * width + compact, minlength=m * width).reshape(m, width)  # [solution, n-gram]
        best = counts.max(axis=0)
        holds_best = counts == best
        alone = holds_best.sum(axis=0) == 1
        runner_up = np.where(holds_best, 0, counts).max(axis=0)
        # The highest count among the *other* solutions: the runner-up's for the one solution holding the maximum.
        others = np.where(holds_best & alone, runner_up, best)
        matches = np.minimum(counts, others).sum(axis=1)
        totals = counts.sum(axis=1)
        if n == 1:
            unigram_matches = matches
            with np.errstate(divide="ignore", invalid="ignore"):
                log_precisions += np.log(np.where(matches > 0, matches / np.maximum(totals, 1), 1.0))
        else:
            log_precisions += np.log((matches + 1) / (totals + 1))
    gap = np.abs(lengths[None, :] - lengths[:, None])
    # Closest reference length, the shorter on a tie, never the solution itself.
    order = gap * (int(lengths.max()) + 1) + lengths[None, :]
    np.fill_diagonal(order, np.iinfo(np.int64).max)
    ref = lengths[np.argmin(order, axis=1)]
    with np.errstate(divide="ignore"):
        brevity = np.where(lengths >= ref, 1.0, np.exp(1 - ref / np.maximum(lengths, 1)))
    brevity = np.where(lengths == 0, 0.0, brevity)
    return np.where(unigram_matches > 0, brevity * np.exp(log_precisions / len(NGRAM_ORDERS)), 0.0)


def length_stats(values: Sequence[int], edges: np.ndarray) -> dict[str, Any] | None:
    """n, mean, median, p10, p90, max and a histogram on the given edges; None for no values."""
    if not len(values):
        return None
    array = np.asarray(values, dtype=np.float64)
    counts, _ = np.histogram(array, bins=edges)
    return {"n": len(array), "mean": float(array.mean()), "median": float(np.median(array)),
            "p10": float(np.percentile(array, 10)), "p90": float(np.percentile(array, 90)),
            "max": int(array.max()),
            "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}}


def lengths(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Response-token length distributions: greedy (all, correct, incorrect) and sampled."""
    greedy = [row["response_tokens"] for row in rows]
    sampled = [c["response_tokens"] for row in rows for c in row.get("samples") or []]
    top = max(chain(greedy, sampled), default=0)
    edges = np.linspace(0.0, max(top, 1), HISTOGRAM_BINS + 1)
    return {
        "greedy": length_stats(greedy, edges),
        "greedy_correct": length_stats([row["response_tokens"] for row in rows if row["correct"]], edges),
        "greedy_incorrect": length_stats([row["response_tokens"] for row in rows if not row["correct"]], edges),
        "sampled": length_stats(sampled, edges),
    }

"""diversity.analyze against independent computations: brute-force pass@k, hand-made votes, n-gram sets
counted directly, sacrebleu's BLEU, numpy's statistics, and evaluation._sampled_summary itself."""

from __future__ import annotations

import itertools
import random
import re

import numpy as np
import pytest

from sft_vs_rlvr.evaluate import driver as evaluation
from sft_vs_rlvr.report import diversity

WORDS = ["she", "sold", "48", "/", "2", "=", "24", "clips", "in", "may", ",", "so", "the", "total", "is", "+", "72",
         ".", "each", "of", "them", "had", "$", "5", "more", "apples"]


def sample(response="", extracted=None, correct=False, verifier_correct=None, tokens=10):
    return {"response": response, "extracted": extracted, "correct": correct,
            "verifier_correct": correct if verifier_correct is None else verifier_correct,
            "verifier_extracted": extracted, "truncated": False, "response_tokens": tokens}


def row(index, samples=None, correct=False, tokens=10):
    out = {"id": f"t-{index:04d}", "prompt": "p", "response": "r", "gold": "1", "extracted": "1",
           "correct": correct, "verifier_extracted": "1", "verifier_correct": correct, "truncated": False,
           "response_tokens": tokens}
    if samples is not None:
        out["samples"] = samples
    return out


def random_rows(seed, problems=12, n=6):
    rng = random.Random(seed)
    rows = []
    for i in range(problems):
        samples = []
        for _ in range(n):
            answer = rng.choice(["1", "2", "2.0", "3", None])
            samples.append(sample(" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12))), answer,
                                  answer in ("2", "2.0") and rng.random() < 0.9, rng.random() < 0.5,
                                  rng.randint(1, 400)))
        rows.append(row(i, samples, rng.random() < 0.5, rng.randint(1, 400)))
    return rows


def brute_pass_at_k(flags, k):
    subsets = list(itertools.combinations(range(len(flags)), k))
    return sum(any(flags[i] for i in subset) for subset in subsets) / len(subsets)


@pytest.mark.parametrize("n", [3, 6, 8])
def test_pass_at_k_equals_the_fraction_of_k_subsets_holding_a_correct_sample(n):
    rows = random_rows(n, n=n)
    out = diversity.analyze(rows)
    assert out["n_problems"] == len(rows) and out["n_per_problem"] == n
    for grader, key in (("robust", "correct"), ("verifier", "verifier_correct")):
        ks = [k for k in (1, 2, 4, 8) if k <= n] + ([n] if n not in (1, 2, 4, 8) else [])
        assert list(out["pass_at_k"][grader]) == [str(k) for k in ks]
        for k in ks:
            expected = sum(brute_pass_at_k([s[key] for s in r["samples"]], k) for r in rows) / len(rows)
            assert out["pass_at_k"][grader][str(k)] == pytest.approx(expected, abs=1e-12)


def test_majority_vote_by_hand():
    rows = [
        # answers 7, 8, 8, None: maj@1 votes 7 (right), maj@2 tie 7/8 -> first seen 7 (right), maj@4 8 (wrong).
        row(0, [sample("", "7", True), sample("", "8"), sample("", "8.0"), sample("", None)]),
        # maj@1 5 (wrong), maj@2 tie 5/9 -> 5 (wrong), maj@4: "9" and "$9" are one number with 2 votes (right).
        row(1, [sample("", "5"), sample("", "9", True), sample("", "$9", True), sample("", None)]),
    ]
    out = diversity.analyze(rows)
    assert out["maj_at_k"]["robust"] == {"1": 0.5, "2": 0.5, "4": 0.5}
    rows[1]["samples"][3] = sample("", "5")  # now 5 has 2 votes too and was seen first: wrong
    assert diversity.analyze(rows)["maj_at_k"]["robust"] == {"1": 0.5, "2": 0.5, "4": 0.0}
    assert out["pass_at_k"]["robust"]["4"] == 1.0


def test_curves_and_distinct_answers_agree_with_the_results_file_summary():
    rows = random_rows(3, problems=20, n=8)
    out = diversity.analyze(rows)
    summary = evaluation._sampled_summary(rows)
    for grader in ("robust", "verifier"):
        assert out["pass_at_k"][grader] == summary[grader]["pass@k"]
        assert out["maj_at_k"][grader] == summary[grader]["maj@k"]
    assert out["distinct_answers"]["mean"] == pytest.approx(summary["distinct_answers_mean"])


def test_distinct_answers_histogram_counts_non_null_strings():
    rows = [row(0, [sample("", "1"), sample("", "1"), sample("", None)]),
            row(1, [sample("", "1"), sample("", "1.0"), sample("", "2")]),  # strings, so 1 and 1.0 differ
            row(2, [sample("", None), sample("", None), sample("", None)])]
    assert diversity.analyze(rows)["distinct_answers"] == {"mean": 4 / 3, "histogram": {"0": 1, "1": 1, "3": 1}}


def ngrams(tokens, n):
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def test_distinct_n_by_direct_set_counting_over_correct_solutions_only():
    texts = ["She sold 48 clips, then 48 more.", "she sold 48 clips", "Then she sold 24."]
    rows = [row(0, [sample(texts[0], correct=True), sample("ignored: wrong", correct=False),
                    sample(texts[1], correct=True), sample(texts[2], correct=True)]),
            row(1, [sample("only one correct", correct=True), sample("x"), sample("y"), sample("z")]),
            row(2, [sample("a b", correct=True), sample("a b", correct=True), sample("q"), sample("r")])]
    out = diversity.analyze(rows)["ngram_diversity"]
    assert out["problems"] == 2 and out["self_bleu_problems"] == 2
    token_lists = [re.findall(r"\w+|[^\w\s]", t.lower()) for t in texts]
    assert token_lists[0] == ["she", "sold", "48", "clips", ",", "then", "48", "more", "."]
    for n in (1, 2, 3, 4):
        grams = [g for tokens in token_lists for g in ngrams(tokens, n)]
        first = len(set(grams)) / len(grams)
        second = {1: 2 / 4, 2: 1 / 2}.get(n)  # "a b" twice: n-grams a, b, a, b / ab, ab; none of order 3, 4
        expected = (first + second) / 2 if second is not None else first
        assert out["distinct_n"][str(n)] == pytest.approx(expected), n


def reference_self_bleu(token_lists):
    """Self-BLEU by sacrebleu: add-one smoothing for n > 1 is its "add-k" with k = 1 (Chen & Cherry method 2)."""
    sacrebleu = pytest.importorskip("sacrebleu")
    scores = []
    for i, hypothesis in enumerate(token_lists):
        references = [" ".join(t) for j, t in enumerate(token_lists) if j != i]
        bleu = sacrebleu.sentence_bleu(" ".join(hypothesis), references, smooth_method="add-k", smooth_value=1,
                                       tokenize="none", use_effective_order=False)
        scores.append(bleu.score / 100)
    return scores


@pytest.mark.parametrize("seed", range(8))
def test_self_bleu_equals_sacrebleu_add_one_smoothing(seed):
    rng = random.Random(seed)
    vocabulary = WORDS[: rng.randint(3, len(WORDS))]
    m = rng.randint(2, 7)
    token_lists = [[rng.choice(vocabulary) for _ in range(rng.randint(0, 14))] for _ in range(m)]
    if seed == 0:
        token_lists = [["a", "b"], ["a", "b", "c"], ["a"], ["a", "b", "c", "d"]]  # shorter than 4 tokens
    if seed == 1:
        token_lists = [["a", "b", "c"], ["a", "b"], ["a", "b", "c", "d"]]  # closest length tie: 2 and 4 for 3
    grams = diversity._ngram_ids(token_lists, {})
    scores = diversity.self_bleu_scores(grams, np.array([len(t) for t in token_lists]))
    assert scores == pytest.approx(reference_self_bleu(token_lists), abs=1e-9)
    texts = [" ".join(t) for t in token_lists]
    out = diversity.ngram_diversity([texts])
    assert out["self_bleu"] == pytest.approx(float(np.mean(reference_self_bleu(token_lists))), abs=1e-9)


def test_self_bleu_is_one_for_identical_solutions_and_zero_without_shared_words():
    assert diversity.ngram_diversity([["the cat sat on the mat"] * 3])["self_bleu"] == pytest.approx(1.0)
    assert diversity.ngram_diversity([["a b c d", "e f g h"]])["self_bleu"] == 0.0


def test_self_bleu_covers_only_the_first_qualifying_problems(monkeypatch):
    monkeypatch.setattr(diversity, "SELF_BLEU_MAX_PROBLEMS", 2)
    problems = [["a b c", "a b d"], ["only one"], ["x y", "y x", "x x"], ["p q r s", "p q r t"]]
    out = diversity.ngram_diversity(problems)
    assert out["problems"] == 3 and out["self_bleu_problems"] == 2
    first_two = [np.mean(reference_self_bleu([t.split() for t in p])) for p in (problems[0], problems[2])]
    assert out["self_bleu"] == pytest.approx(float(np.mean(first_two)), abs=1e-9)


def test_packed_and_reranked_ngram_ids_give_the_same_numbers(monkeypatch):
    rows = random_rows(11, problems=15, n=8)
    packed = diversity.analyze(rows)["ngram_diversity"]
    monkeypatch.setattr(diversity, "_PACK_LIMIT", 2)  # every problem takes the re-ranking path
    assert diversity.analyze(rows)["ngram_diversity"] == packed


def test_ascii_tokenizer_equals_the_reference_regex():
    reference = re.compile(r"\w+|[^\w\s]")
    rng = random.Random(0)
    alphabet = [chr(c) for c in range(128)] + ["é", "×", "\u2212", "\u00a0", "\u2009", "中"]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert diversity.tokenize(text) == reference.findall(text.lower()), repr(text)


def check_stats(stats, values, edges):
    array = np.asarray(values, dtype=float)
    assert stats["n"] == len(values) and stats["max"] == array.max()
    assert [stats[k] for k in ("mean", "median", "p10", "p90")] == pytest.approx(
        [array.mean(), np.median(array), np.percentile(array, 10), np.percentile(array, 90)])
    assert stats["histogram"]["edges"] == pytest.approx(list(edges))
    assert stats["histogram"]["counts"] == list(np.histogram(array, bins=edges)[0])


def test_length_statistics_against_numpy():
    rows = random_rows(5, problems=30, n=4)
    out = diversity.analyze(rows)["lengths"]
    greedy = [r["response_tokens"] for r in rows]
    sampled = [s["response_tokens"] for r in rows for s in r["samples"]]
    edges = np.linspace(0, max(greedy + sampled), 21)
    check_stats(out["greedy"], greedy, edges)
    check_stats(out["greedy_correct"], [r["response_tokens"] for r in rows if r["correct"]], edges)
    check_stats(out["greedy_incorrect"], [r["response_tokens"] for r in rows if not r["correct"]], edges)
    check_stats(out["sampled"], sampled, edges)
    assert sum(out["sampled"]["histogram"]["counts"]) == len(sampled)


def test_rows_without_samples():
    rows = [row(0, correct=True, tokens=5), row(1, tokens=7)]
    out = diversity.analyze(rows)
    assert out["n_per_problem"] is None and out["pass_at_k"] == {} and out["maj_at_k"] == {}
    assert out["distinct_answers"] == {"mean": None, "histogram": {}}
    assert out["ngram_diversity"] == {"distinct_n": {"1": None, "2": None, "3": None, "4": None}, "problems": 0,
                                      "self_bleu": None, "self_bleu_problems": 0}
    assert out["lengths"]["sampled"] is None and out["lengths"]["greedy"]["n"] == 2
    assert out["lengths"]["greedy_incorrect"]["max"] == 7
    assert diversity.analyze([])["lengths"]["greedy"] is None


def test_some_rows_without_samples_is_refused():
    with pytest.raises(ValueError, match="no samples"):
        diversity.analyze([row(0, [sample()]), row(1)])


def test_output_is_json_ready():
    import json
    out = diversity.analyze(random_rows(2))
    assert json.loads(json.dumps(out)) == out

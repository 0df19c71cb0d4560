"""Both graders on one table of tricky responses, and the verifier replica against open-instruct's own code.

Every row gives, written out by hand, what each grader extracts and whether it scores the response correct:
- verifier: open-instruct v0.3.0 GSM8KVerifier (ground_truth_utils.py:199-221): commas between digits dropped,
  the last number (sign kept) compared with the label as a string. REFUSED: verifier_grade raises
  GoldAnswerError, because the label is not a plain number and open-instruct would score it 0 silently.
- robust: the answer span the format asks for (the last `#### N`, else `\\boxed{N}`, else `<answer>N</answer>`,
  else "the answer is N"), else the last number; compared as exact numbers.

test_real_gsm8k_verifier_scores_the_table_like_ours runs the real GSM8KVerifier class of the pinned checkout, in
open-instruct's own environment, on every row (one subprocess, about 10 s). It skips, saying why, where the
checkout or its environment is absent (scripts/setup_open_instruct_cpu.sh or `make setup-gpu` makes them).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from sft_vs_rlvr.evaluate import grading
from sft_vs_rlvr.launch import open_instruct

REFUSED = "refused"
MINUS = "\u2212"  # Unicode minus sign


class Case(NamedTuple):
    id: str
    response: str
    gold: str
    verifier_extracted: str | None
    verifier: bool | str  # True, False or REFUSED
    robust_extracted: str | None
    robust: bool | str


C = Case
TABLE = [
    # The GSM8KVerifier table of the open-instruct v0.3.0 facts sheet (section 4), row by row.
    C("fs-answer-tag", "<answer>72</answer>", "72", "72", True, "72", True),
    C("fs-72.0", "<answer>72.0</answer>", "72", "72.0", False, "72.0", True),
    C("fs-dollar-in-tag", "<answer>$72</answer>", "72", "72", True, "72", True),
    C("fs-percent", "72%", "72", "72", True, "72", True),
    C("fs-boxed", "\\boxed{72}", "72", "72", True, "72", True),
    C("fs-hashes", "#### 72", "72", "72", True, "72", True),
    C("fs-answer-is", "The answer is 72.", "72", "72", True, "72", True),
    C("fs-comma-in-response", "<answer>1,000</answer>", "1000", "1000", True, "1,000", True),
    C("fs-comma-in-label", "<answer>1,000</answer>", "1,000", None, REFUSED, "1,000", True),
    C("fs-comma-in-label-only", "<answer>1000</answer>", "1,000", None, REFUSED, "1000", True),
    C("fs-millions", "1,234,567", "1234567", "1234567", True, "1,234,567", True),
    C("fs-list-of-digits", "1,2,3", "123", "3", False, "1,2,3", True),  # robust reads a comma as thousands
    C("fs-negative-vs-positive", "<answer>-5</answer>", "5", "-5", False, "-5", False),
    C("fs-negative", "<answer>-5</answer>", "-5", "-5", True, "-5", True),
    C("fs-positive-vs-negative", "<answer>5</answer>", "-5", "5", False, "5", False),
    C("fs-explicit-plus", "<answer>+5</answer>", "5", "+5", False, "+5", True),
    C("fs-unicode-minus", MINUS + "5", "5", "5", True, "-5", False),  # the verifier drops the sign
    C("fs-trailing-zero", "72.50", "72.5", "72.50", False, "72.50", True),
    C("fs-leading-dot", ".5", "0.5", ".5", False, ".5", True),
    C("fs-number-after-tag", "<answer>72</answer> Step 2", "72", "2", False, "72", True),
    C("fs-slash", "72/100", "72", "100", False, "72/100", False),
    C("fs-scientific", "7.2e1", "72", "1", False, "1", False),
    # Signs.
    C("negative-in-prose", "The temperature ends at -12 degrees.", "-12", "-12", True, "-12", True),
    C("unicode-minus-negative-gold", "#### " + MINUS + "5", "-5", "5", False, "-5", True),
    C("plus-in-label", "#### +5", "+5", "+5", True, "+5", True),
    C("minus-zero", "#### -0", "0", "-0", False, "-0", True),
    C("hyphen-expression", "#### 7-2", "5", "-2", False, "7", False),
    # Text after the answer; several answer lines.
    C("units-after-hashes", "#### 72 dollars", "72", "72", True, "72", True),
    C("chatter-after-hashes", "#### 72\nLet me know if you have 2 more questions.", "72", "2", False, "72", True),
    C("two-hash-lines-last-right", "#### 10\n#### 12", "12", "12", True, "12", True),
    C("two-hash-lines-first-right", "#### 12\n#### 10", "12", "10", False, "10", False),
    C("new-problem-after-answer", "#### 18\n\nQuestion: Tom has 4 apples.\n#### 4", "18", "4", False, "4", False),
    C("alternative-in-parentheses", "#### 5 (or 6)", "5", "6", False, "5", True),
    C("hashes-without-space", "####72", "72", "72", True, "72", True),
    C("hashes-before-boxed", "#### 41\n\\boxed{42}", "42", "42", True, "41", False),  # '####' outranks \boxed
    # Decimals.
    C("decimal-same-string", "#### 72.50", "72.50", "72.50", True, "72.50", True),
    C("decimal-trailing-zero", "#### 0.50", "0.5", "0.50", False, "0.50", True),
    C("leading-zero", "#### 072", "72", "072", False, "072", True),
    C("label-72.0", "#### 72", "72.0", "72", False, "72", True),
    C("decimal-then-full-stop", "So the total is 1.5.", "1.5", "1.5", True, "1.5", True),
    # Fractions.
    C("fraction-vs-decimal-gold", "#### 3/4", "0.75", "4", False, "3/4", True),
    C("decimal-vs-fraction-gold", "#### 0.75", "3/4", None, REFUSED, "0.75", True),
    C("improper-fraction", "#### 7/2", "3.5", "2", False, "7/2", True),
    C("mixed-number", "#### 3 1/2", "3.5", "2", False, "3", False),
    C("latex-frac", "\\boxed{\\frac{3}{4}}", "0.75", "4", False, "3/4", True),
    C("latex-dfrac-improper", "The answer is $\\dfrac{7}{2}$.", "3.5", "2", False, "7/2", True),
    C("latex-thin-space-thousands", "\\boxed{12\\,500}", "12500", "500", False, "12500", True),
    C("latex-braced-comma-thousands", "#### 12{,}500", "12500", "500", False, "12500", True),
    C("division-by-zero", "#### 1/0", "0", "0", True, "1/0", False),
    # Percentages (the sign is ignored, not converted).
    C("percent-after-hashes", "#### 25%", "25", "25", True, "25", True),
    C("percent-vs-fraction-gold", "#### 25%", "0.25", "25", False, "25", False),
    # Currency.
    C("dollars-and-cents", "#### $18.00", "18", "18.00", False, "18.00", True),
    C("dollars-thousands", "The total is $1,250.", "1250", "1250", True, "1,250", True),
    C("euro-after-answer-is", "The answer is \u20ac5", "5", "5", True, "5", True),  # via the last number
    C("pound-after-hashes", "#### \u00a35", "5", "5", True, "5", True),  # via the last number
    # Units.
    C("unit-km", "#### 15 km", "15", "15", True, "15", True),
    C("number-in-unit-text", "The answer is 6 cookies for each of 2 kids.", "6", "2", False, "6", True),
    # Scientific notation (neither grader reads it).
    C("scientific-after-hashes", "#### 1e3", "1000", "3", False, "1", False),
    # Empty, whitespace, no number.
    C("empty", "", "0", None, False, None, False),
    C("whitespace-only", "  \n\t ", "0", None, False, None, False),
    C("words-only", "Seven", "7", None, False, None, False),
    C("padded-hashes", "  #### 72  \n", "72", "72", True, "72", True),
    C("spaces-after-hashes", "####    72", "72", "72", True, "72", True),
    # Answer tags.
    C("tag-with-spaces", "<answer> 42 </answer>", "42", "42", True, "42", True),
    C("think-then-tag", "<think>The answer is 40.</think>\n<answer>42</answer>", "42", "42", True, "42", True),
    C("words-in-tag", "<answer>about 42 apples</answer>", "42", "42", True, "42", True),  # via the last number
    C("check-after-tag", "<answer>42</answer>\nCheck: 6 * 7 = 42, done in 3 steps.", "42", "3", False, "42", True),
    # \boxed{}.
    C("check-after-boxed", "\\boxed{42}. Check: 40 + 2 = 42 in 3 steps", "42", "3", False, "42", True),
    C("boxed-spaces-comma", "\\boxed{ 1,000 }", "1000", "1000", True, "1,000", True),
    C("boxed-with-text", "\\boxed{42 \\text{ apples}}", "42", "42", True, "42", True),  # via the last number
    C("boxed-negative-in-math", "$\\boxed{-5}$", "-5", "-5", True, "-5", True),
    # "The answer is".
    C("answer-is-colon", "The answer is: 18", "18", "18", True, "18", True),
    C("answer-is-capitals", "THE ANSWER IS 7", "7", "7", True, "7", True),
    C("answer-is-then-correction", "The answer is 18. Wait, it is 20.", "20", "20", True, "18", False),
    # Digit groups separated by spaces (neither grader joins them).
    C("space-thousands-after-hashes", "#### 1 000", "1000", "000", False, "1", False),
    C("space-thousands-in-prose", "She saved 12 500 dollars.", "12500", "500", False, "500", False),
    # Other characters.
    C("fullwidth-digits", "#### \uff17\uff12", "72", "\uff17\uff12", False, "\uff17\uff12", True),
    C("trailing-comma", "#### 5,", "5", "5", True, "5,", True),
]

# Ground truths a grader cannot score as a number: (gold, robust refuses, verifier refuses). Where a grader takes
# the gold, the response "#### <gold>" is correct under it (robust: "#### 1000" for "1e3", which it cannot extract).
GOLDS = [
    ("seventy", True, True), ("", True, True), ("N/A", True, True), ("   ", True, True), ("none", True, True),
    ("72 apples", True, True), ("nan", True, True), ("inf", True, True), ("1/0", True, True),
    # Numbers robust reads, but labels open-instruct's verifier can never match: refused by verifier_grade only.
    ("3/4", False, True), ("1,000", False, True), ("$5", False, True), (" 72", False, True), ("72.", False, True),
    (MINUS + "5", False, True), ("1e3", False, True),
    # Plain numbers: both graders take them.
    ("72", False, False), ("-5", False, False), ("+5", False, False), ("0.75", False, False), (".5", False, False),
    ("72.0", False, False),
]


def test_table_is_large_and_ids_unique():
    assert len(TABLE) >= 40
    assert len({case.id for case in TABLE}) == len(TABLE)


@pytest.mark.parametrize("case", TABLE, ids=[case.id for case in TABLE])
def test_both_graders_give_the_tabled_verdicts(case):
    robust = grading.robust_grade(case.response, case.gold)
    assert (robust.extracted, robust.correct) == (case.robust_extracted, case.robust)
    if case.verifier == REFUSED:
        with pytest.raises(grading.GoldAnswerError, match="not a plain number"):
            grading.verifier_grade(case.response, case.gold)
    else:
        verifier = grading.verifier_grade(case.response, case.gold)
        assert (verifier.extracted, verifier.correct) == (case.verifier_extracted, case.verifier)
        # The replica underneath verifier_grade gives the same for any label verifier_grade takes.
        assert grading.open_instruct_gsm8k(case.response, case.gold) == verifier


def test_where_the_graders_disagree_on_the_table():
    """The expected disagreements, listed so that a change to either grader shows here as a diff."""
    disagree = sorted(case.id for case in TABLE if case.verifier != REFUSED and case.verifier != case.robust)
    assert disagree == sorted([
        "fs-72.0", "fs-list-of-digits", "fs-explicit-plus", "fs-unicode-minus", "fs-trailing-zero",
        "fs-leading-dot", "fs-number-after-tag", "unicode-minus-negative-gold", "minus-zero",
        "chatter-after-hashes", "alternative-in-parentheses", "hashes-before-boxed", "decimal-trailing-zero",
        "leading-zero", "label-72.0", "fraction-vs-decimal-gold", "improper-fraction", "division-by-zero",
        "dollars-and-cents", "number-in-unit-text", "check-after-tag", "check-after-boxed",
        "answer-is-then-correction", "fullwidth-digits", "latex-frac", "latex-dfrac-improper",
        "latex-thin-space-thousands", "latex-braced-comma-thousands",
    ])
    # The four rows where the verifier (the RL reward) says correct and robust says wrong.
    assert sorted(c.id for c in TABLE if c.verifier is True and c.robust is False) == [
        "answer-is-then-correction", "division-by-zero", "fs-unicode-minus", "hashes-before-boxed"]


@pytest.mark.parametrize("gold,robust_refuses,verifier_refuses", GOLDS, ids=[repr(g[0]) for g in GOLDS])
def test_non_numeric_gold_is_an_error_not_a_silent_zero(gold, robust_refuses, verifier_refuses):
    response = "#### 1000" if gold == "1e3" else f"#### {gold}"  # the response that states the gold answer
    for grade, refuses in ((grading.robust_grade, robust_refuses), (grading.verifier_grade, verifier_refuses)):
        if refuses:
            with pytest.raises(grading.GoldAnswerError, match=repr(gold).replace("$", r"\$").replace("+", r"\+")):
                grade(response, gold)
        else:
            assert grade(response, gold).correct, (grade.__name__, gold)
    assert issubclass(grading.GoldAnswerError, ValueError)
    if robust_refuses or verifier_refuses:
        with pytest.raises(grading.GoldAnswerError):
            grading.check_ground_truth(gold)
    else:
        grading.check_ground_truth(gold)


def test_refused_labels_would_score_zero_in_open_instruct():
    """Why verifier_grade refuses: open-instruct scores even the verbatim answer 0 for such a label."""
    for gold, _, verifier_refuses in GOLDS:
        if verifier_refuses and any(ch.isdigit() for ch in gold):
            assert not grading.open_instruct_gsm8k(f"#### {gold}", gold).correct, gold


def test_non_string_gold_is_read_as_its_text():
    assert grading.robust_grade("#### 8", 8).correct and grading.verifier_grade("#### 8", 8).correct
    with pytest.raises(grading.GoldAnswerError):
        grading.robust_grade("#### 8", None)


# --- open-instruct's own GSM8KVerifier -----------------------------------------------------------------------------

REAL_VERIFIER = r"""
import inspect, json, sys
from open_instruct.ground_truth_utils import GSM8KVerifier, VerificationResult
verifier = GSM8KVerifier()
scores = []
for prediction, label in json.load(open(sys.argv[1], encoding="utf-8")):
    result = verifier(tokenized_prediction=[], prediction=prediction, label=label)
    assert type(result) is VerificationResult, type(result)
    scores.append(result.score)
with open(sys.argv[2], "w", encoding="utf-8") as out:
    json.dump({"name": verifier.name, "weight": verifier.weight, "source": inspect.getsourcefile(GSM8KVerifier),
               "scores": scores}, out)
"""


def real_verifier_scores(pairs: list[tuple[str, str]], tmp_path: Path, probe) -> dict:
    """GSM8KVerifier()(tokenized_prediction=[], prediction=..., label=...).score for each pair, in open-instruct's
    environment (conftest.open_instruct_probe)."""
    source, target = tmp_path / "pairs.json", tmp_path / "scores.json"
    source.write_text(json.dumps(pairs), encoding="utf-8")
    probe(REAL_VERIFIER, str(source), str(target))
    return json.loads(target.read_text(encoding="utf-8"))


@pytest.mark.slow  # imports open-instruct in its own environment
def test_real_gsm8k_verifier_scores_the_table_like_ours(tmp_path, open_instruct_probe):
    scored = [(case.response, case.gold) for case in TABLE]
    scored += [(f"#### {gold}", gold) for gold, _, _ in GOLDS]
    scored += [("Seven", "seven"), ("", ""), ("1,2,3", "12,3")]  # whole-response fallback; the comma rule
    ours = [grading.open_instruct_gsm8k(response, label) for response, label in scored]
    # The real verifier does not return what it extracted: it scores 1 against our extraction iff it extracted
    # the same string (the whole response where there is no number).
    echoes = [(response, response if grade.extracted is None else grade.extracted)
              for (response, _), grade in zip(scored, ours)]
    real = real_verifier_scores(scored + echoes, tmp_path, open_instruct_probe)
    assert (real["name"], real["weight"]) == ("gsm8k", 1.0)
    assert Path(real["source"]).resolve().is_relative_to(open_instruct.checkout_dir().resolve()), real["source"]
    scores, echo_scores = real["scores"][:len(scored)], real["scores"][len(scored):]
    assert set(real["scores"]) <= {0.0, 1.0}
    mismatched = [(pair, grade, score) for pair, grade, score in zip(scored, ours, scores)
                  if score != float(grade.correct)]
    assert not mismatched, mismatched
    other_extraction = [(pair, grade.extracted) for pair, grade, score in zip(scored, ours, echo_scores)
                        if score != 1.0]
    assert not other_extraction, other_extraction
    # And verifier_grade (where it takes the label) is the same replica: the table's verifier column is the real one.
    for case, score in zip(TABLE, scores):
        if case.verifier != REFUSED:
            assert float(case.verifier) == score, case.id


# --- the rescoring command line ------------------------------------------------------------------------------------

def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sft_vs_rlvr.evaluate.grading", *args], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)


def test_command_line_rescores_the_table(tmp_path):
    cases = [case for case in TABLE if case.verifier != REFUSED]
    source = tmp_path / "table.jsonl"
    lines = [json.dumps({"id": case.id, "response": case.response, "ground_truth": case.gold}, ensure_ascii=False)
             for case in cases]
    lines.insert(3, "   ")  # a blank line is skipped, and still counted in the line numbers
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = run_cli("--input", str(source), "--output", str(out))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(cases)
    assert [row["line"] for row in rows] == [n for n in range(1, len(cases) + 2) if n != 4]
    for row, case in zip(rows, cases):
        assert row["ground_truth"] == case.gold
        assert row["verifier"] == {"extracted": case.verifier_extracted, "correct": case.verifier}, case.id
        assert row["robust"] == {"extracted": case.robust_extracted, "correct": case.robust}, case.id
        assert row["disagree"] is (case.verifier != case.robust), case.id
    # Standard output by default, the same lines.
    result = run_cli("--input", str(source))
    assert result.returncode == 0 and result.stdout == out.read_text(encoding="utf-8")


@pytest.mark.parametrize("bad_line,message", [
    ("{not json", "expected a JSON object"),
    (json.dumps({"response": "#### 4"}), "expected a JSON object"),
    (json.dumps({"ground_truth": "4"}), "expected a JSON object"),
    (json.dumps(["#### 4", "4"]), "expected a JSON object"),
    (json.dumps({"response": None, "ground_truth": "4"}), "expected a JSON object"),
    (json.dumps({"response": "#### 4", "ground_truth": "four"}), "'four' is not a number"),
    (json.dumps({"response": "#### 1000", "ground_truth": "1,000"}), "'1,000' is not a plain number"),
    (json.dumps({"response": "#### 4", "ground_truth": None}), "'None' is not a number"),
], ids=["not-json", "no-ground-truth", "no-response", "array", "null-response", "word-gold", "comma-gold",
        "null-gold"])
def test_command_line_names_the_malformed_line(tmp_path, bad_line, message):
    source = tmp_path / "bad.jsonl"
    good = json.dumps({"response": "#### 4", "ground_truth": "4"})
    source.write_text("\n".join([good, "", bad_line, good]) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = run_cli("--input", str(source), "--output", str(out))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {source}:3: ") and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()  # nothing half-written


def test_command_line_names_a_line_that_is_not_utf8(tmp_path):
    source = tmp_path / "bad.jsonl"
    source.write_bytes(b'{"response": "#### 4", "ground_truth": "4"}\n{"response": "\xff", "ground_truth": "4"}\n')
    result = run_cli("--input", str(source))
    assert result.returncode == 2 and result.stderr.startswith(f"error: {source}:2: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_command_line_missing_file(tmp_path):
    result = run_cli("--input", str(tmp_path / "absent.jsonl"))
    assert result.returncode == 2 and "cannot read" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

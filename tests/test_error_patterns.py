"""error_patterns: arithmetic slips on hand-checked GSM8K-style lines and on real gold solutions, failure
categories in their stated order, and solve sets paired by id."""

from __future__ import annotations

import builtins
import json

import pytest

from sft_vs_rlvr.report import error_patterns as ep

SLIP_CASES = [
    # (text, expected slips as (expression, stated, correct))
    ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.", []),
    ("Natalia sold 48+24 = 72 clips altogether.", []),
    ("Each box costs 12 * 3 = 38 dollars.", [("12 * 3", "38", "36")]),
    ("So she earned 0.2 x 50 = $<<0.2*50=10>>10.", []),
    ("So she earned 0.2 x 50 = $<<0.2*50=12>>12.", [("0.2*50", "12", "10")]),
    ("He pays $1,200 + $300 = $1,500 in total.", []),
    ("He pays $1,200 + $300 = $1,600 in total.", [("$1,200 + $300", "$1,600", "1500")]),
    ("The discount is 20% * 80 = $16.", []),
    ("She scored 45/60 * 100 = 75% on the test.", []),
    ("She scored 45/60 = 75% on the test.", []),
    ("She scored 45/60 = 80% on the test.", [("45/60", "80%", "75%")]),
    ("Each friend gets 10/3 = 3.33 pounds.", []),
    ("Each friend gets 10/3 = 3.34 pounds.", [("10/3", "3.34", "3.333333")]),
    ("He buys 2 x 3 = 7 packs.", [("2 x 3", "7", "6")]),
    ("He buys 2 × 3 = 6 packs and 8 ÷ 2 = 5 boxes.", [("8 ÷ 2", "5", "4")]),
    ("The total is (3 + 5) * 2 = 16 apples.", []),
    ("The total is (3 + 5) * 2 = 18 apples.", [("(3 + 5) * 2", "18", "16")]),
    ("She has 7 - 10 = -3 dollars left.", []),
    ("She read 100 - 50 - 30 - 15 = 5 pages.", []),
    ("2*5 + 2*3 = 10 + 6 = 16", []),  # the first "=" states an expression, not a number
    ("4 * 3 = 12 / 2 = 7", [("12 / 2", "7", "6")]),
    ("There are no equations in this answer, only 3 apples and 4 pears.", []),
    ("Let x = 5 and y = 7.", []),  # single numbers
    ("Then 3x + 2 = 11 so x = 3.", []),  # algebra
    ("y - 5 + 3 = 8", []),  # the tail of an expression with words
    ("He splits it 5 / 0 = 3 ways.", []),  # division by zero is skipped
    ("The party ate 8 x 1 1/2 = 12 rolls.", []),  # a mixed number
    ("She walks for 25 / 1/3 = 75 minutes.", []),  # a fraction written tight, as one number
    ("The sun sets at 6:00+48=6:48 PM.", []),  # clock time
    ("Total: 1,234 + 766 = 2,000 cans.\nNext 9 - 4 = 6 boxes.", [("9 - 4", "6", "5")]),
]


@pytest.mark.parametrize("text, expected", SLIP_CASES)
def test_arithmetic_slips_on_gsm8k_lines(text, expected):
    found = [(s["expression"], s["stated"], s["correct"]) for s in ep.arithmetic_slips(text)]
    assert found == expected


def test_arithmetic_slips_never_call_eval(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("eval was called")

    monkeypatch.setattr(builtins, "eval", refuse)
    assert len(ep.arithmetic_slips("12 * 3 = 38 and __import__('os') + 1 = 2")) == 1


def test_degenerate_text_is_fast_and_does_not_flag_a_cut_expression():
    assert ep.arithmetic_slips("1+" * 5000 + "1 = 3") == []  # longer than MAX_EXPRESSION_CHARS: not looked at
    # Brackets opened before the step are dropped, however many.
    assert ep.arithmetic_slips("(" * 3000 + "1 + 1 = 3") == [{"expression": "1 + 1", "stated": "3", "correct": "2"}]


# The only slips in the gold solutions of the first 500 GSM8K train rows, each checked by hand:
# row 167 "So it cost 192*100=$1920": 192 * 100 = 19,200 (the gold answer 1920 carries the slip);
# row 198 "she should run for 6/3=.5 hour": 6 / 3 = 2 (the gold meant 3/6 = .5).
GOLD_SLIPS = {167: [{"expression": "192*100", "stated": "$1920", "correct": "19200"}],
              198: [{"expression": "6/3", "stated": ".5", "correct": "2"}]}


def test_gold_solutions_of_real_gsm8k_rows_have_only_the_known_slips(gsm8k_dir):
    with open(gsm8k_dir / "train.jsonl") as handle:
        answers = [json.loads(line)["answer"] for _, line in zip(range(500), handle)]
    found = {i: slips for i, answer in enumerate(answers) if (slips := ep.arithmetic_slips(answer))}
    assert found == GOLD_SLIPS
    assert "192*100=$1920" in answers[167] and "6/3=.5 hour" in answers[198]


SAME = object()


def record(problem_id="p1", correct=False, truncated=False, extracted="5", response="The answer is 5.",
           verifier_correct=None, verifier_extracted=SAME, gold="7", prompt="<|user|>\nHow many?\n<|assistant|>\n"):
    return {"id": problem_id, "prompt": prompt, "response": response, "gold": gold, "extracted": extracted,
            "correct": correct, "verifier_extracted": extracted if verifier_extracted is SAME else verifier_extracted,
            "verifier_correct": correct if verifier_correct is None else verifier_correct, "truncated": truncated,
            "response_tokens": 10}


def test_categories_are_checked_in_their_stated_order():
    assert ep.CATEGORIES == ("correct", "truncated", "no_answer", "arithmetic_error", "wrong_answer")
    slip = "3 * 4 = 13, so 13."
    assert ep.categorize(record(correct=True, truncated=True, response=slip)) == "correct"
    assert ep.categorize(record(truncated=True, extracted=None, response=slip)) == "truncated"
    assert ep.categorize(record(extracted=None, response=slip)) == "no_answer"
    assert ep.categorize(record(response=slip)) == "arithmetic_error"
    assert ep.categorize(record(response="3 * 4 = 12, so 12.")) == "wrong_answer"


def test_categorize_with_the_verifier_uses_its_own_verdict_and_extraction():
    row = record(correct=True, extracted="7", verifier_correct=False, verifier_extracted=None)
    assert ep.categorize(row) == "correct"
    assert ep.categorize(row, key="verifier_correct") == "no_answer"


def test_failure_categories_counts_and_examples():
    long_response = "3 * 4 = 13. " * 60
    rows = [record("p5", response=long_response), record("p1", correct=True), record("p3", truncated=True),
            record("p2", response="3 * 4 = 14"), record("p4", extracted=None), record("p6"), record("p0")]
    out = ep.failure_categories(rows, examples=1)
    assert out["counts"] == {"correct": 1, "truncated": 1, "no_answer": 1, "arithmetic_error": 2, "wrong_answer": 2}
    assert set(out["examples"]) == {"truncated", "no_answer", "arithmetic_error", "wrong_answer"}
    (arith,) = out["examples"]["arithmetic_error"]
    assert arith == {"id": "p2", "gold": "7", "extracted": "5", "response": "3 * 4 = 14",
                     "slips": [{"expression": "3 * 4", "stated": "14", "correct": "12"}]}
    assert out["examples"]["wrong_answer"] == [{"id": "p0", "gold": "7", "extracted": "5",
                                                "response": "The answer is 5."}]
    two = ep.failure_categories(rows, examples=2)["examples"]["arithmetic_error"]
    assert [e["id"] for e in two] == ["p2", "p5"]
    assert two[1]["response"] == long_response[:500] + "…" and len(two[1]["slips"]) == 60


def test_solve_sets_pair_rows_by_id_in_any_order():
    question = "Tom has 3 apples. How many?"
    prompt = f"<|system|>\nBe brief.\n<|user|>\n{question}\n<|assistant|>\n"
    a = [record("q3", True, prompt=prompt, response="A3"), record("q1", True, prompt=prompt, response="A1"),
         record("q2", False, prompt=prompt, response="A2"), record("q4", False, prompt=prompt, response="A4"),
         record("q9", True, prompt=prompt), record("q0", False, prompt="no template", response="A0")]
    b = [record("q1", True, response="B1"), record("q2", True, response="B2"), record("q4", False, response="B4"),
         record("q3", False, response="B3"), record("q0", False, response="B0" + "x" * 600), record("q7", True),
         record("q8", False)]
    out = ep.solve_sets(a, b)
    assert out["n_paired"] == 5 and out["unpaired"] == {"a": 1, "b": 2}
    assert out["counts"] == {"both": 1, "a_only": 1, "b_only": 1, "neither": 2}
    assert out["examples"]["a_only"] == [{"id": "q3", "gold": "7", "question": question,
                                          "response_a": "A3", "response_b": "B3"}]
    assert [e["id"] for e in out["examples"]["neither"]] == ["q0", "q4"]
    neither = out["examples"]["neither"][0]
    assert neither["question"] == "no template" and neither["response_b"] == ("B0" + "x" * 600)[:500] + "…"
    assert [e["id"] for e in ep.solve_sets(a, b, examples=1)["examples"]["neither"]] == ["q0"]
    assert ep.solve_sets(b, a)["counts"] == {"both": 1, "a_only": 1, "b_only": 1, "neither": 2}
    verifier = ep.solve_sets(a, b, key="verifier_correct")
    assert verifier["counts"] == out["counts"]


def test_solve_sets_refuse_a_repeated_id():
    with pytest.raises(ValueError, match="appears twice"):
        ep.solve_sets([record("q1"), record("q1")], [record("q1")])


def test_question_and_clip():
    assert ep.question("<|user|>\nWhat is 2+2?\n<|assistant|>\n") == "What is 2+2?"
    assert ep.question("<|user|>\nno assistant turn") == "no assistant turn"
    assert ep.question("plain prompt") == "plain prompt"
    assert ep.clip("x" * 500) == "x" * 500 and ep.clip("x" * 501) == "x" * 500 + "…" and ep.clip(None) is None

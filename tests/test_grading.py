import json
import subprocess
import sys

import pytest

from sft_vs_rlvr import atomic
from sft_vs_rlvr.evaluate import grading

# (response, gold, robust verdict, verifier verdict)
CASES = [
    ("So 3 + 4 = 7.\n#### 7", "7", True, True),
    ("#### 72.0", "72", True, False),          # the verifier compares strings: "72.0" != "72"
    ("#### 1,000", "1000", True, True),        # both drop thousands commas
    ("She pays $18.\n#### $18", "18", True, True),
    ("The answer is 5 apples", "5", True, True),
    ("#### 5\nThen 12 more words 9", "5", True, False),   # answer line wins; verifier takes the last number
    ("\\boxed{42}", "42", True, True),
    ("<answer>42</answer>", "42", True, True),
    ("#### -3", "-3", True, True),
    ("#### 3", "-3", False, False),
    ("no number here", "4", False, False),
    ("#### 3/4", "0.75", True, False),
    ("#### 41", "42", False, False),
    ("", "0", False, False),
]


@pytest.mark.parametrize("response,gold,robust,verifier", CASES)
def test_graders_on_tricky_responses(response, gold, robust, verifier):
    assert grading.robust_grade(response, gold).correct is robust
    assert grading.verifier_grade(response, gold).correct is verifier


def test_verifier_falls_back_to_whole_response_like_open_instruct():
    # No number: open-instruct compares the whole (lower-cased) response with the label.
    assert grading.open_instruct_gsm8k("Seven", "seven").correct
    assert grading.open_instruct_gsm8k("Seven", "seven").extracted is None
    # verifier_grade refuses such a label rather than score it (tests/test_grading_parity.py has more).
    with pytest.raises(grading.GoldAnswerError, match="not a plain number"):
        grading.verifier_grade("Seven", "seven")


def test_non_numeric_gold_is_refused():
    with pytest.raises(ValueError, match="not a number"):
        grading.robust_grade("#### 4", "four")


def test_parse_number():
    assert grading.parse_number("1,000") == 1000
    assert grading.parse_number("$72.50") == grading.parse_number("72.5")
    assert grading.parse_number("abc") is None
    assert grading.parse_number("1/0") is None


def test_gold_solutions_of_real_gsm8k_grade_correct(gsm8k_dir):
    rows = atomic.read_jsonl(gsm8k_dir / "test.jsonl")
    for row in rows:
        gold = row["answer"].split("####")[-1].strip().replace(",", "")
        assert grading.robust_grade(row["answer"], gold).correct, row["answer"]
        assert grading.verifier_grade(row["answer"], gold).correct, row["answer"]


def test_command_line_rescoring(tmp_path):
    source = tmp_path / "in.jsonl"
    atomic.write_jsonl(source, [{"response": "#### 72.0", "ground_truth": "72"},
                                {"response": "#### 9", "ground_truth": 8}])
    out = tmp_path / "out.jsonl"
    subprocess.run([sys.executable, "-m", "sft_vs_rlvr.evaluate.grading", "--input", str(source), "--output", str(out)],
                   check=True)
    rows = atomic.read_jsonl(out)
    assert rows[0]["robust"]["correct"] and not rows[0]["verifier"]["correct"] and rows[0]["disagree"]
    assert rows[1]["robust"] == {"extracted": "9", "correct": False} and not rows[1]["disagree"]


def test_command_line_bad_input(tmp_path):
    source = tmp_path / "bad.jsonl"
    source.write_text(json.dumps({"response": "4"}) + "\n")
    result = subprocess.run([sys.executable, "-m", "sft_vs_rlvr.evaluate.grading", "--input", str(source)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "ground_truth" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

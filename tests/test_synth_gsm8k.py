import re

import pytest

from sft_vs_rlvr.evaluate import grading
from sft_vs_rlvr.tiny import synth_gsm8k


def test_deterministic_by_seed():
    assert synth_gsm8k.generate("train", 50, 42) == synth_gsm8k.generate("train", 50, 42)
    assert synth_gsm8k.generate("train", 50, 42) != synth_gsm8k.generate("train", 50, 7)


def test_splits_share_no_question_even_across_seeds():
    test = {p.question for p in synth_gsm8k.generate("test", 300, 1)}
    train = {p.question for p in synth_gsm8k.generate("train", 900, 2)}
    warmup = {p.question for p in synth_gsm8k.generate("warmup", 300, 3)}
    assert len(test) == 300 and len(train) == 900 and len(warmup) == 300
    assert not (test & train) and not (test & warmup) and not (train & warmup)


def test_solutions_are_gsm8k_style_and_correct():
    for problem in synth_gsm8k.generate("train", 200, 42):
        assert problem.solution.endswith(f"\n#### {problem.answer}")
        # every calculator annotation is true arithmetic, as in GSM8K
        for expression, value in re.findall(r"<<([^=]+)=(-?\d+)>>", problem.solution):
            assert eval(expression) == int(value)  # noqa: S307 - our own generated digits and operators
        assert grading.robust_grade(problem.solution, str(problem.answer)).correct
        assert grading.verifier_grade(problem.solution, str(problem.answer)).correct


def test_rows_have_rlvr_gsm8k_zs_format():
    rows = list(synth_gsm8k.as_rows(synth_gsm8k.generate("test", 3, 42), "test"))
    assert [sorted(r) for r in rows] == [["dataset", "ground_truth", "id", "messages"]] * 3
    assert [m["role"] for m in rows[0]["messages"]] == ["user", "assistant"]
    assert rows[0]["dataset"] == "gsm8k" and rows[0]["ground_truth"].lstrip("-").isdigit()


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown split"):
        synth_gsm8k.generate("dev", 1, 0)
    with pytest.raises(ValueError, match="size"):
        synth_gsm8k.generate("train", -1, 0)


def test_chatty_style_hides_the_answer_from_both_graders():
    """The warm-up's chatty style (tiny/model.py): the same working, no '####' line, a closing number that is never
    the answer, so both graders score it wrong however right the working is."""
    import random

    rng = random.Random(0)
    for problem in synth_gsm8k.generate("warmup", 200, 42):
        text = synth_gsm8k.chatty(problem, rng).solution
        assert "####" not in text and text.startswith(problem.solution.rsplit("\n#### ", 1)[0] + " ")
        assert not grading.robust_grade(text, str(problem.answer)).correct
        assert not grading.verifier_grade(text, str(problem.answer)).correct

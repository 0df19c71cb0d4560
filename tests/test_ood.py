"""Out-of-distribution sets: rows in each Hub dataset's own schema become prepared test rows."""

from __future__ import annotations

import json

import pytest

from sft_vs_rlvr import atomic
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.errors import UserError
from sft_vs_rlvr.evaluate import ood

SCHEMA_ROWS = {
    "gsm8k-platinum": [{"question": "Q one?", "answer": "work\n#### 1,000"}, {"question": "Q two?", "answer": "no line"}],
    "gsm-hard": [{"input": "Q hard?", "code": "def solution(): ...", "target": 12.0},
                 {"input": "Q third?", "code": "...", "target": 1 / 3}],
    "svamp": [{"ID": "a", "Body": "Tom has 3 apples. ", "Question": "How many?", "Answer": 2.5}],
    "gsm-plus": [{"question": "Q plus?", "answer": "7"}, {"question": "Q critical?", "answer": "None"}],
}


@pytest.fixture
def local_sets(tmp_path, monkeypatch):
    folder = tmp_path / "ood-source"
    for name, rows in SCHEMA_ROWS.items():
        atomic.write_jsonl(folder / f"{name}.jsonl", rows)
    monkeypatch.setenv("OOD_DATA_DIR", str(folder))
    return folder


def test_answers_become_labels_both_graders_accept():
    assert [ood.number_text(v) for v in (12.0, "1,000", 2.5, "-3", 1 / 3, "None", None)] == \
        ["12", "1000", "2.5", "-3", None, None, None]


def test_each_schema_is_prepared_with_the_shared_instruction(local_sets, tmp_path):
    shared = settings_mod.load("tiny").shared
    expected = {"gsm8k-platinum": (["1000"], 1), "gsm-hard": (["12"], 1), "svamp": (["2.5"], 0), "gsm-plus": (["7"], 1)}
    for name, (truths, dropped) in expected.items():
        rows = atomic.read_jsonl(ood.prepare(name, shared, tmp_path / "data"))
        assert [r["ground_truth"] for r in rows] == truths
        assert all(r["messages"][0]["content"].endswith("\n\n" + shared["instruction"]) for r in rows)
        manifest = json.loads((tmp_path / "data" / f"{name}.manifest.json").read_text())
        assert manifest["dropped_non_numeric"] == dropped and manifest["rows"] == len(truths)
    svamp = atomic.read_jsonl(tmp_path / "data" / "svamp.jsonl")[0]
    assert svamp["messages"][0]["content"].startswith("Tom has 3 apples. How many?")


def test_unknown_unsupported_and_misshapen_sets_are_refused(local_sets, tmp_path):
    with pytest.raises(UserError, match="unknown ood set 'gsm-soft'"):
        ood.check_names(["gsm-soft"])
    with pytest.raises(UserError, match="'math-500' is not supported yet"):
        ood.check_names(["math-500"])
    atomic.write_jsonl(local_sets / "gsm-hard.jsonl", [{"question": "renamed field", "target": 1}])
    with pytest.raises(UserError, match="row 0 has no field 'input'"):
        ood.prepare("gsm-hard", settings_mod.load("tiny").shared, tmp_path / "other")
    assert not (tmp_path / "other" / "gsm-hard.jsonl").exists()


def test_synthetic_hard_set_is_built_offline_and_shares_nothing_with_training(tmp_path, monkeypatch):
    import re

    from sft_vs_rlvr import data_prep
    from sft_vs_rlvr.tiny import synth_gsm8k

    monkeypatch.delenv("OOD_DATA_DIR", raising=False)
    shared = settings_mod.load("tiny").shared
    rows = atomic.read_jsonl(ood.prepare("synthetic-hard", shared, tmp_path / "data"))
    size = shared["test_size"]  # as many as the test split
    assert len(rows) == size and len({r["messages"][0]["content"] for r in rows}) == size
    train = {r["messages"][0]["content"] for r in data_prep.build(shared)["sft_train.jsonl"]}
    assert not train & {r["messages"][0]["content"] for r in rows}
    for row in rows:
        question = row["messages"][0]["content"].removesuffix("\n\n" + shared["instruction"])
        assert max(int(n) for n in re.findall(r"\d+", question)) > 9
        assert synth_gsm8k.split_of(question) == "test" and int(row["ground_truth"]) >= 0
    # answers are recomputed by the template, so they are right: check the arithmetic of a few directly
    for problem in synth_gsm8k.generate_hard(20, seed=0):
        numbers = [int(n) for n in re.findall(r"\d+", problem.question)]
        if "buys" in problem.question and "loses" in problem.question:
            assert problem.answer == numbers[0] + numbers[1] - numbers[2]
        elif "gave" in problem.question:
            assert problem.answer == numbers[0] - numbers[1]
    manifest = json.loads((tmp_path / "data" / "synthetic-hard.manifest.json").read_text())
    assert manifest["rows"] == size and manifest["dropped_non_numeric"] == 0

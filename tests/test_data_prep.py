import json

import pytest

from sft_vs_rlvr import atomic, data_prep, settings
from sft_vs_rlvr.errors import UserError


def tiny_shared(**changes):
    return {**settings.load("tiny").shared, "train_size": 40, "test_size": 10, **changes}


def test_three_files_share_questions_and_instruction(tmp_path):
    shared = tiny_shared()
    manifest = data_prep.prepare(shared, tmp_path, log=lambda m: None)
    sft = atomic.read_jsonl(tmp_path / "sft_train.jsonl")
    rl = atomic.read_jsonl(tmp_path / "rl_train.jsonl")
    test = atomic.read_jsonl(tmp_path / "test.jsonl")
    assert (len(sft), len(rl), len(test)) == (40, 40, 10)
    assert [r["messages"][0] for r in sft] == [r["messages"][0] for r in rl]  # same prompts, both arms
    assert all(r["messages"][0]["content"].endswith("\n\n" + shared["instruction"]) for r in sft + rl + test)
    assert all(r["messages"][-1]["content"].endswith("#### " + g["ground_truth"]) for r, g in zip(sft, rl))
    assert not {r["messages"][0]["content"] for r in test} & {r["messages"][0]["content"] for r in rl}
    assert manifest["files"]["test.jsonl"]["rows"] == 10


def test_second_prepare_reuses_and_detects_tampering_and_other_settings(tmp_path):
    shared = tiny_shared()
    first = data_prep.prepare(shared, tmp_path, log=lambda m: None)
    assert data_prep.prepare(shared, tmp_path, log=lambda m: None) == first
    with pytest.raises(UserError, match="other settings"):
        data_prep.prepare(tiny_shared(test_size=11), tmp_path, log=lambda m: None)
    path = tmp_path / "test.jsonl"
    rows = atomic.read_jsonl(path)
    rows[0]["ground_truth"] = "999"
    atomic.write_jsonl(path, rows)
    with pytest.raises(UserError, match="modified after preparation"):
        data_prep.prepare(shared, tmp_path, log=lambda m: None)
    assert atomic.read_jsonl(path)[0]["ground_truth"] == "999"  # refused, not overwritten


def test_real_gsm8k_rows_from_a_local_folder(tmp_path, gsm8k_dir):
    shared = tiny_shared(dataset=str(gsm8k_dir), train_size=7473, test_size=1319)
    data_prep.prepare(shared, tmp_path, log=lambda m: None)
    rl = atomic.read_jsonl(tmp_path / "rl_train.jsonl")
    test = atomic.read_jsonl(tmp_path / "test.jsonl")
    assert len(rl) == 7473 and len(test) == 1319
    first = json.loads((gsm8k_dir / "train.jsonl").open().readline())
    assert rl[0]["ground_truth"] == "72" and rl[0]["messages"][0]["content"].startswith(first["question"])
    assert all(r["ground_truth"].lstrip("-").replace(".", "").isdigit() for r in rl + test)


def test_too_many_rows_asked_of_real_data(tmp_path, gsm8k_dir):
    with pytest.raises(UserError, match="has 1319 rows but 5000"):
        data_prep.prepare(tiny_shared(dataset=str(gsm8k_dir), test_size=5000), tmp_path, log=lambda m: None)


def test_gold_answer_line_is_required():
    assert data_prep.gsm8k_gold_answer("x\n#### 1,234") == "1234"
    with pytest.raises(UserError, match="without a '####'"):
        data_prep.gsm8k_gold_answer("no answer line")

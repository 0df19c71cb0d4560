"""The reference protocol: lm-eval's own gsm8k_cot (8-shot CoT) on the tiny model over prepared test rows.

One real run (8 problems, about 15 s on 2 CPU cores; marked slow) in a subprocess with the Hub and datasets offline
and sockets refused, so a hidden download fails the test instead of passing silently. The tiny model's
context is 256 positions and 8 exemplars alone are ~1,350 of its tokens, so the run passes --max-length.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install -r requirements.txt -c requirements.lock)")

from sft_vs_rlvr import atomic, contract, data_prep
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.evaluate import reference as reference_eval

REPO = Path(__file__).resolve().parent.parent
LIMIT = 8
FIRST_EXEMPLAR = "Q: There are 15 trees in the grove. Grove workers will plant trees in the grove today."
LAST_EXEMPLAR_ANSWER = "23 - 15 is 8. The answer is 8."
# Refuse every connection, then run the CLI as `python -m` would.
OFFLINE_RUNNER = (
    "import runpy, socket, sys\n"
    "def refuse(*args, **kwargs):\n"
    "    raise OSError('network access attempted during an offline test')\n"
    "socket.socket.connect = refuse\n"
    "socket.create_connection = refuse\n"
    "sys.argv = ['reference_eval', *sys.argv[1:]]\n"
    "runpy.run_module('sft_vs_rlvr.evaluate.reference', run_name='__main__')\n"
)


@pytest.fixture(scope="module")
def tiny(tiny_base):
    return settings_mod.load("tiny").shared, tiny_base


@pytest.fixture(scope="module")
def test_file(tiny, tmp_path_factory) -> Path:
    shared, _ = tiny
    return atomic.write_jsonl(tmp_path_factory.mktemp("data") / "test.jsonl", data_prep.build(shared)["test.jsonl"])


def _offline_env(root: Path) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HOME": str(root / "hf_home"), "HF_DATASETS_CACHE": str(root / "hf_datasets")}
    env.pop("CONFIG_DIR", None)
    return env


@pytest.fixture(scope="module")
def reference_run(tiny, test_file, tmp_path_factory):
    _, model = tiny
    root = tmp_path_factory.mktemp("reference")
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_RUNNER, "--model", str(model), "--test-file", str(test_file),
         "--out-dir", str(root / "eval"), "--name", "base", "--limit", str(LIMIT), "--max-length", "2048",
         "--device", "cpu"],
        cwd=REPO, env=_offline_env(root), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads((root / "eval" / "base_reference_results.json").read_text())
    samples = atomic.read_jsonl(root / "eval" / results["samples_file"])
    return results, samples, result, model


@pytest.mark.slow
def test_results_hold_lm_evals_metrics_and_protocol(reference_run):
    results, samples, _, model = reference_run
    assert results["format"] == contract.REFERENCE_RESULTS.id and results["version"] == 1
    assert results["model_name"] == "base" and results["model"]["path"] == str(model)
    assert results["lm_eval_version"] == lm_eval_version() and results["lm_eval_version"]
    task = results["task"]
    assert task["name"] == "gsm8k_cot" and task["num_fewshot"] == 8 and results["num_fewshot"] == 8
    assert task["version"] is not None
    assert task["config_sha256"] == hashlib.sha256(reference_eval.task_yaml_path().read_bytes()).hexdigest()
    assert task["sampler"] == "first_n" and task["exemplars"] == 8
    assert results["protocol"]["chat_template"] is False and results["protocol"]["fewshot_as_multiturn"] is False
    assert results["protocol"]["decoding"] == "greedy" and "Q:" in results["protocol"]["until"]
    assert results["n"] == LIMIT == len(samples)
    assert results["lm_eval"]["n-samples"]["gsm8k_cot"]["effective"] == LIMIT
    for name in reference_eval.FILTERS:
        metric = results["metrics"][name]
        assert 0.0 <= metric["exact_match"] <= 1.0 and metric["exact_match_stderr"] >= 0.0
        # lm-eval's aggregate is the mean of its own per-sample scores, which the samples file keeps.
        assert metric["exact_match"] == pytest.approx(sum(s["correct"][name] for s in samples) / LIMIT)
    assert results["counts"]["context_truncated"] == 0  # --max-length 2048 holds the 8-shot prompt


@pytest.mark.slow
def test_samples_use_gsm8k_cots_exemplars_and_the_plain_question(reference_run, test_file, tiny):
    _, samples, _, _ = reference_run
    shared, _ = tiny
    rows = atomic.read_jsonl(test_file)[:LIMIT]
    assert [s["doc_id"] for s in samples] == list(range(LIMIT))
    assert [s["id"] for s in samples] == [r["id"] for r in rows]
    for sample, row in zip(samples, rows):
        question = row["messages"][0]["content"].removesuffix("\n\n" + shared["instruction"])
        prompt = sample["prompt"]
        assert prompt.startswith(FIRST_EXEMPLAR) and LAST_EXEMPLAR_ANSWER in prompt
        assert prompt.count("Q: ") == 9  # 8 exemplars and the problem
        assert prompt.endswith(f"\n\nQ: {question}\nA:")  # no instruction suffix, no chat template
        assert shared["instruction"] not in prompt and "<|user|>" not in prompt and "<|assistant|>" not in prompt
        assert sample["target"] == row["ground_truth"]
        assert set(sample["filtered"]) == set(sample["correct"]) == set(reference_eval.FILTERS)
        assert isinstance(sample["response"], str)


@pytest.mark.slow
def test_run_used_no_network(reference_run):
    _, _, result, _ = reference_run
    assert "network access attempted" not in result.stderr


def test_gsm8k_docs_strip_the_instruction(tiny, test_file):
    shared, _ = tiny
    rows = atomic.read_jsonl(test_file)[:3]
    docs = reference_eval.gsm8k_docs(rows, shared["instruction"])
    for doc, row in zip(docs, rows):
        assert doc["id"] == row["id"] and doc["answer"] == row["solution"]
        assert doc["question"] + "\n\n" + shared["instruction"] == row["messages"][0]["content"]
        assert doc["answer"].split("####")[-1].strip() == row["ground_truth"]


def _cli(capsys, *args: str) -> tuple[int, str]:
    code = reference_eval.main(list(args))
    return code, capsys.readouterr().err


def test_bad_input_is_a_one_line_error(tmp_path, tiny, test_file, capsys):
    _, model = tiny
    out = ["--out-dir", str(tmp_path / "out"), "--name", "base"]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    foreign = atomic.write_jsonl(tmp_path / "foreign.jsonl", [
        {**row, "messages": [{"role": "user", "content": "What is 2 + 2?"}]} for row in atomic.read_jsonl(test_file)[:2]])
    cases = [
        (["--model", str(tmp_path / "no-model"), "--test-file", str(test_file)], "model folder"),
        (["--model", str(model), "--test-file", str(tmp_path / "missing.jsonl")], "not found"),
        (["--model", str(model), "--test-file", str(empty)], "is empty"),
        (["--model", str(model), "--test-file", str(foreign)], "shared instruction"),
        (["--model", str(model), "--test-file", str(test_file)], "--max-length"),  # tiny: 256 positions
        (["--model", str(model), "--test-file", str(test_file), "--limit", "0"], "--limit"),
    ]
    for args, expected in cases:
        code, err = _cli(capsys, *args, *out)
        assert code == 2, (args, err)
        assert err.startswith("error: ") and err.count("\n") == 1 and expected in err, (args, err)
    assert not (tmp_path / "out").exists()


def lm_eval_version() -> str:
    from importlib.metadata import version

    return version("lm_eval")

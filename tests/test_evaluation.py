"""The evaluation stage on a small experiment built here: the tiny base model stands in for a trained arm
(a copy with a finished manifest and two checkpoints), 32 test problems, 4 samples each. Real generation,
real grading, real files; a real kill for the resume test and a real file-size limit for the full disk.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sft_vs_rlvr import atomic, contract, data_prep, runs
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.tiny import model as tiny_model

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def experiment(tmp_path, config_dir, monkeypatch):
    text = (config_dir / "eval.toml").read_text()
    text = text.replace("limit = 0", "limit = 32", 1).replace("batch_size = 64", "batch_size = 8", 1)
    text = text.replace("reference = true", "reference = false", 1)  # lm-eval's protocol: test_reference_eval.py
    assert 'ood_sets = ["synthetic-hard"]' in text  # the tiny profile's; off here, on in test_out_of_distribution_...
    text = text.replace('ood_sets = ["synthetic-hard"]', "ood_sets = []", 1)
    (config_dir / "eval.toml").write_text(text)
    monkeypatch.setenv("CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("OUTPUT_ROOT", str(tmp_path / "runs"))
    monkeypatch.delenv("EXPERIMENT_ID", raising=False)
    settings = settings_mod.load("tiny")
    shared = settings.shared
    base = tiny_model.ensure(shared["chat_template"], shared["instruction"], log=lambda _: None)
    exp = tmp_path / "runs" / "tiny-seed42"
    runs.claim_experiment(settings, exp)
    data_prep.prepare(shared, exp / "data", log=lambda _: None)
    arm = exp / "sft"
    shutil.copytree(base, arm / "model")
    for step in (8, 16):  # checkpoints as TRL writes them: weights and config, no tokenizer
        (arm / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
        for name in ("model.safetensors", "config.json"):
            shutil.copy2(base / name, arm / "checkpoints" / f"checkpoint-{step}" / name)
    checkpoints = [{"step": s, "path": f"checkpoints/checkpoint-{s}", "examples_seen": 16 * s} for s in (8, 16, 24)]
    atomic.write_json(arm / "manifest.json", {"format": contract.MANIFEST.id, "version": contract.MANIFEST.version,
                                              "stage": "sft", "status": "completed", "final_model": "model",
                                              "checkpoints": checkpoints, "settings_fingerprints": {}})
    return exp


def evaluate(exp: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sft_vs_rlvr.evaluate.driver", "--experiment-dir", str(exp), *args],
                          cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=600)


def test_every_output_is_written_and_a_missing_checkpoint_is_a_recorded_skip(experiment):
    result = evaluate(experiment)
    assert result.returncode == 0, result.stderr[-3000:]
    eval_dir = experiment / "eval"
    index = json.loads((eval_dir / "index.json").read_text())
    statuses = {m["name"]: m["status"] for m in index["models"]}
    assert statuses == {"base": "evaluated", "sft": "evaluated", "sft_step8": "evaluated", "sft_step16": "evaluated",
                        "sft_step24": "skipped"}
    assert "listed in sft/manifest.json but" in [m for m in index["models"] if m["name"] == "sft_step24"][0]["reason"]
    results = json.loads((eval_dir / "sft_results.json").read_text())
    samples = atomic.read_jsonl(eval_dir / "sft_samples.jsonl")
    assert results["version"] == 2 and results["n"] == len(samples) == 32 and results["engine"] == "transformers"
    assert set(results["decodings"]) == {"greedy", "sampled"} and results["decodings"]["sampled"]["n"] == 4
    sampled = results["sampled"]
    for grader, key in (("robust", "correct"), ("verifier", "verifier_correct")):
        flags = [[c[key] for c in s["samples"]] for s in samples]
        assert sampled[grader]["pass@k"]["4"] == pytest.approx(sum(any(f) for f in flags) / 32)
        assert sampled[grader]["pass@k"]["1"] == pytest.approx(sum(sum(f) for f in flags) / 128)
        assert set(sampled[grader]["maj@k"]) == {"1", "2", "4"}
    assert all(len(s["samples"]) == 4 and {"response", "extracted", "truncated"} <= set(s["samples"][0]) for s in samples)
    assert results["counts"]["truncated"] == sum(s["truncated"] for s in samples)
    step = json.loads((eval_dir / "sft_step8_results.json").read_text())
    assert step["checkpoint"] == {"arm": "sft", "step": 8, "examples_seen": 128, "kind": "hf_model"}
    assert set(step["decodings"]) == {"greedy"}
    # the checkpoint is the base model's weights: same greedy answers as the base, evaluated in the arm's template
    base = atomic.read_jsonl(eval_dir / "base_samples.jsonl")
    assert [s["response"] for s in atomic.read_jsonl(eval_dir / "sft_step8_samples.jsonl")] == [s["response"] for s in base]
    assert not (eval_dir / ".scratch").exists() and not list((eval_dir / ".partial").glob("*"))

    again = evaluate(experiment)
    assert again.stdout.count("already evaluated") == 4


def test_a_killed_evaluation_resumes_where_it_stopped_with_the_same_answers(experiment, tmp_path):
    reference = evaluate(experiment, "--models", "base")
    assert reference.returncode == 0, reference.stderr[-2000:]
    expected = atomic.read_jsonl(experiment / "eval" / "base_samples.jsonl")
    shutil.rmtree(experiment / "eval")

    process = subprocess.Popen([sys.executable, "-m", "sft_vs_rlvr.evaluate.driver", "--experiment-dir", str(experiment),
                                "--models", "base"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    partial = experiment / "eval" / ".partial" / "base.sampled.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (partial.is_file() and partial.read_text().count("\n") >= 3):
        time.sleep(0.05)  # header + two batches of the sampled pass
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (experiment / "eval" / "base_results.json").exists()
    resumed = evaluate(experiment, "--models", "base")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "eval: base greedy: resuming, 32 of 32 problems done" in resumed.stdout  # finished before the kill
    assert "eval: base sampled: resuming, " in resumed.stdout and ", 32 of 32" not in resumed.stdout.split("sampled")[1]
    assert atomic.read_jsonl(experiment / "eval" / "base_samples.jsonl") == expected


def test_a_full_disk_leaves_no_half_written_results(experiment):
    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))

    result = subprocess.run([sys.executable, "-m", "sft_vs_rlvr.evaluate.driver", "--experiment-dir", str(experiment),
                             "--models", "sft"], cwd=REPO, capture_output=True, text=True, timeout=600,
                            preexec_fn=small_files)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: writing the evaluation of sft failed (File too large)")
    assert not (experiment / "eval" / "sft_results.json").exists()
    assert not [p for p in (experiment / "eval").glob("*.tmp*")]
    assert not (experiment / "eval" / "sft_samples.jsonl").exists() or \
        len(atomic.read_jsonl(experiment / "eval" / "sft_samples.jsonl")) == 32


def test_bad_models_and_data_are_refused_with_one_line(experiment):
    weights = experiment / "sft" / "model" / "model.safetensors"
    weights.rename(weights.with_suffix(".moved"))
    result = evaluate(experiment, "--models", "sft")
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "has no weights" in result.stderr
    weights.with_suffix(".moved").rename(weights)
    (experiment / "sft" / "model" / "tokenizer.json").unlink()
    (experiment / "sft" / "model" / "tokenizer_config.json").unlink()
    result = evaluate(experiment, "--models", "sft")
    assert result.returncode == 2 and "cannot load model or tokenizer" in result.stderr.strip().splitlines()[-1]

    rows = atomic.read_jsonl(experiment / "data" / "test.jsonl")
    rows[3]["ground_truth"] = "seventy"
    atomic.write_jsonl(experiment / "data" / "test.jsonl", rows)
    result = evaluate(experiment, "--models", "base")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {experiment / 'data' / 'test.jsonl'}: row {rows[3]['id']} has ground truth 'seventy', not a number; "
        "the data source is broken (start --fresh)")
    assert not (experiment / "eval").exists()


def test_results_of_another_format_version_are_redone_and_said(experiment):
    assert evaluate(experiment, "--models", "base").returncode == 0
    path = experiment / "eval" / "base_results.json"
    old = json.loads(path.read_text())
    path.write_text(json.dumps({**old, "version": 1}))
    again = evaluate(experiment, "--models", "base")
    assert "earlier results are not current (it is format sft-vs-rlvr/eval-results version 1)" in again.stdout
    assert json.loads(path.read_text())["version"] == contract.EVAL_RESULTS.version


def test_the_vllm_request_and_its_outputs(experiment):
    from types import SimpleNamespace

    from sft_vs_rlvr.evaluate import engines as eval_engines

    greedy = eval_engines.vllm_sampling_params(eval_engines.greedy(512, 42), eos_token_id=128001)
    assert greedy == {"n": 1, "max_tokens": 512, "stop_token_ids": [128001], "skip_special_tokens": True,
                      "seed": 42, "temperature": 0.0, "top_p": 1.0}
    sampled = eval_engines.vllm_sampling_params(eval_engines.sampled(16, 0.6, 1.0, 512, 42), eos_token_id=128001)
    assert (sampled["n"], sampled["temperature"], sampled["top_p"]) == (16, 0.6, 1.0)
    outputs = [SimpleNamespace(outputs=[SimpleNamespace(text="#### 3", token_ids=[1, 2, 128001], finish_reason="stop"),
                                        SimpleNamespace(text="so", token_ids=[5] * 512, finish_reason="length")])]
    assert eval_engines.completions_from_vllm(outputs) == [[eval_engines.Completion("#### 3", 3, False),
                                                            eval_engines.Completion("so", 512, True)]]
    assert eval_engines.choose("auto") == "transformers"  # no vLLM or GPU here


def test_out_of_distribution_set_is_evaluated_and_reported_with_its_drop(experiment, config_dir, tmp_path):
    from sft_vs_rlvr.report import analysis as report

    text = (config_dir / "eval.toml").read_text().replace("ood_sets = []", 'ood_sets = ["gsm-hard"]', 1)
    (config_dir / "eval.toml").write_text(text)
    rows = atomic.read_jsonl(experiment / "data" / "test.jsonl")[40:50]
    instruction = settings_mod.load("tiny").shared["instruction"]
    atomic.write_jsonl(tmp_path / "ood" / "gsm-hard.jsonl",  # the Hub dataset's schema: input, code, target
                       [{"input": r["messages"][0]["content"].removesuffix("\n\n" + instruction), "code": "",
                         "target": float(r["ground_truth"])} for r in rows])
    result = evaluate(experiment, "--models", "base,sft", OOD_DATA_DIR=str(tmp_path / "ood"))
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((experiment / "eval" / "ood" / "gsm-hard" / "sft_results.json").read_text())
    assert results["n"] == 10 and results["dataset"]["name"] == "gsm-hard" and set(results["decodings"]) == {"greedy"}
    index = json.loads((experiment / "eval" / "index.json").read_text())
    assert {"base@gsm-hard", "sft@gsm-hard"} <= {m["name"] for m in index["models"]}
    analysis = report.analyze(experiment)
    sft = [o for o in analysis["ood"] if o["model"] == "sft"][0]
    gsm8k = json.loads((experiment / "eval" / "sft_results.json").read_text())["accuracy"]
    assert sft["drop"] == pytest.approx(gsm8k - results["accuracy"]) and sft["drop_ci95"][0] <= sft["drop"]
    assert "sft" in {m["name"] for m in analysis["models"]} and "ood" not in {m["name"] for m in analysis["models"]}

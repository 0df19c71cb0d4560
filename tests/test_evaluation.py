"""The evaluation stage on a small experiment built here: the tiny base model stands in for a trained arm
(a copy with a finished manifest and two checkpoints), LIMIT test problems, 4 samples each. Real generation,
real grading, real files; a real kill for the resume test and a real file-size limit for the full disk.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
from transformers import AutoTokenizer

from sft_vs_rlvr import atomic, contract, data_prep, runs
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.evaluate import driver as evaluation

REPO = Path(__file__).resolve().parent.parent
# Test problems evaluated, in batches of BATCH: the greedy and the sampled pass each take several batches, so a
# kill can land between two of them.
LIMIT, BATCH = 16, 4


@pytest.fixture
def experiment(tmp_path, config_dir, monkeypatch, tiny_base):
    text = (config_dir / "eval.toml").read_text()
    text = text.replace("limit = 0", f"limit = {LIMIT}", 1).replace("batch_size = 64", f"batch_size = {BATCH}", 1)
    text = text.replace("reference = true", "reference = false", 1)  # lm-eval's protocol: test_reference_eval.py
    assert 'ood_sets = ["synthetic-hard"]' in text  # the tiny profile's; off here, on in test_out_of_distribution_...
    text = text.replace('ood_sets = ["synthetic-hard"]', "ood_sets = []", 1)
    (config_dir / "eval.toml").write_text(text)
    monkeypatch.setenv("CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("OUTPUT_ROOT", str(tmp_path / "runs"))
    monkeypatch.delenv("EXPERIMENT_ID", raising=False)
    settings = settings_mod.load("tiny")
    shared = settings.shared
    base = tiny_base
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
    """The evaluation stage's command line run in this process, which has paid its imports once; what it printed
    and its exit status come back as from a subprocess. Its torch threads are those of a subprocess started from
    here (the same OMP_NUM_THREADS), so their greedy answers agree."""
    argv = ["--experiment-dir", str(exp), *args]
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = evaluation.main(argv)
    return subprocess.CompletedProcess(argv, status, out.getvalue(), err.getvalue())


@pytest.mark.slow
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
    assert results["version"] == contract.EVAL_RESULTS.version and results["n"] == len(samples) == LIMIT
    assert results["engine"] == "transformers" and results["placement"] == {"processes": 1, "tensor_parallel": 1}
    shared = settings_mod.load("tiny").shared
    assert results["prompt"]["stop_strings"] == shared["stop_strings"] and results["prompt"]["add_bos"] is False
    tokenizer = AutoTokenizer.from_pretrained(experiment / "sft" / "model")
    assert tokenizer.decode(results["prompt"]["first_prompt_token_ids"]) == samples[0]["prompt"]
    assert set(results["decodings"]) == {"greedy", "sampled"} and results["decodings"]["sampled"]["n"] == 4
    sampled = results["sampled"]
    for grader, key in (("robust", "correct"), ("verifier", "verifier_correct")):
        flags = [[c[key] for c in s["samples"]] for s in samples]
        assert sampled[grader]["pass@k"]["4"] == pytest.approx(sum(any(f) for f in flags) / LIMIT)
        assert sampled[grader]["pass@k"]["1"] == pytest.approx(sum(sum(f) for f in flags) / (4 * LIMIT))
        assert set(sampled[grader]["maj@k"]) == {"1", "2", "4"}
    assert all(len(s["samples"]) == 4 and {"response", "extracted", "truncated"} <= set(s["samples"][0]) for s in samples)
    assert results["counts"]["truncated"] == sum(s["truncated"] for s in samples)
    step = json.loads((eval_dir / "sft_step8_results.json").read_text())
    assert step["checkpoint"] == {"arm": "sft", "step": 8, "examples_seen": 16 * 8, "kind": "hf_model"}
    assert set(step["decodings"]) == {"greedy"}
    # the checkpoint is the base model's weights: same greedy answers as the base, evaluated in the arm's template
    base = atomic.read_jsonl(eval_dir / "base_samples.jsonl")
    assert [s["response"] for s in atomic.read_jsonl(eval_dir / "sft_step8_samples.jsonl")] == [s["response"] for s in base]
    assert not (eval_dir / ".scratch").exists() and not list((eval_dir / ".partial").glob("*"))

    again = evaluate(experiment)
    assert again.stdout.count("already evaluated") == 4


@pytest.mark.slow
def test_a_killed_evaluation_resumes_where_it_stopped_with_the_same_answers(experiment, tmp_path):
    reference = evaluate(experiment, "--models", "base")
    assert reference.returncode == 0, reference.stderr[-2000:]
    expected = atomic.read_jsonl(experiment / "eval" / "base_samples.jsonl")
    shutil.rmtree(experiment / "eval")

    process = subprocess.Popen([sys.executable, "-m", "sft_vs_rlvr.evaluate.driver", "--experiment-dir", str(experiment),
                                "--models", "base"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    partial = experiment / "eval" / ".partial" / "base.sampled.w0of1.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (partial.is_file() and partial.read_text().count("\n") >= 3):
        time.sleep(0.05)  # header + two batches of the sampled pass
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (experiment / "eval" / "base_results.json").exists()
    resumed = evaluate(experiment, "--models", "base")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"eval: base greedy: resuming, {LIMIT} of {LIMIT} problems done" in resumed.stdout  # finished before the kill
    assert "eval: base sampled: resuming, " in resumed.stdout and f", {LIMIT} of {LIMIT}" not in resumed.stdout.split("sampled")[1]
    assert atomic.read_jsonl(experiment / "eval" / "base_samples.jsonl") == expected


@pytest.mark.slow
def test_a_full_disk_leaves_no_half_written_results(experiment):
    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # under the results (LIMIT problems)

    result = subprocess.run([sys.executable, "-m", "sft_vs_rlvr.evaluate.driver", "--experiment-dir", str(experiment),
                             "--models", "sft"], cwd=REPO, capture_output=True, text=True, timeout=600,
                            preexec_fn=small_files)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: writing the evaluation of sft failed (File too large)")
    assert not (experiment / "eval" / "sft_results.json").exists()
    assert not [p for p in (experiment / "eval").glob("*.tmp*")]
    assert not (experiment / "eval" / "sft_samples.jsonl").exists() or \
        len(atomic.read_jsonl(experiment / "eval" / "sft_samples.jsonl")) == LIMIT


@pytest.mark.slow
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
    assert result.returncode == 2 and "cannot load the tokenizer of sft" in result.stderr.strip().splitlines()[-1]

    rows = atomic.read_jsonl(experiment / "data" / "test.jsonl")
    rows[3]["ground_truth"] = "seventy"
    atomic.write_jsonl(experiment / "data" / "test.jsonl", rows)
    result = evaluate(experiment, "--models", "base")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {experiment / 'data' / 'test.jsonl'}: row {rows[3]['id']} has ground truth 'seventy', not a number; "
        "the data source is broken (start --fresh)")
    assert not (experiment / "eval").exists()


@pytest.mark.slow
def test_results_of_another_format_version_are_redone_and_said(experiment):
    assert evaluate(experiment, "--models", "base").returncode == 0
    path = experiment / "eval" / "base_results.json"
    old = json.loads(path.read_text())
    path.write_text(json.dumps({**old, "version": 1}))
    again = evaluate(experiment, "--models", "base")
    assert "earlier results are not current (it is format sft-vs-rlvr/eval-results version 1)" in again.stdout
    assert json.loads(path.read_text())["version"] == contract.EVAL_RESULTS.version


def test_the_vllm_request_and_its_outputs():
    from types import SimpleNamespace

    from sft_vs_rlvr.evaluate import engines as eval_engines

    ids = [[128000, 27, 91], [128000, 5]]
    prompts_, params = eval_engines.vllm_request(ids, [0, 1], eval_engines.greedy(512, 42, ("<|user|>",)), 128001)
    assert prompts_ == [{"prompt_token_ids": [128000, 27, 91]}, {"prompt_token_ids": [128000, 5]}]
    assert params[0] == {"n": 1, "max_tokens": 512, "stop_token_ids": [128001], "stop": ["<|user|>"],
                         "include_stop_str_in_output": False, "skip_special_tokens": True,
                         "seed": 42 * 1_000_003, "temperature": 0.0, "top_p": 1.0}
    assert params[1]["seed"] == 42 * 1_000_003 + 1  # a problem's samples do not depend on its replica
    _, sampled = eval_engines.vllm_request(ids, [1], eval_engines.sampled(16, 0.6, 1.0, 512, 42), 128001)
    assert (sampled[0]["n"], sampled[0]["temperature"], sampled[0]["top_p"]) == (16, 0.6, 1.0)
    outputs = [SimpleNamespace(outputs=[SimpleNamespace(text="#### 3", token_ids=[1, 2, 128001], finish_reason="stop"),
                                        SimpleNamespace(text="so", token_ids=[5] * 512, finish_reason="length")])]
    assert eval_engines.completions_from_vllm(outputs) == [[eval_engines.Completion("#### 3", 3, False),
                                                            eval_engines.Completion("so", 512, True)]]


def test_the_engine_choice_never_falls_back_silently():
    from sft_vs_rlvr.errors import UserError
    from sft_vs_rlvr.evaluate import engines as eval_engines

    assert eval_engines.choose("auto", gpu=False, has_vllm=False) == "transformers"
    assert eval_engines.choose("auto", gpu=True, has_vllm=True) == "vllm"
    assert eval_engines.choose("transformers", gpu=True, has_vllm=False) == "transformers"
    with pytest.raises(UserError, match='engine = "auto" on a GPU machine needs vLLM'):
        eval_engines.choose("auto", gpu=True, has_vllm=False)
    with pytest.raises(UserError, match="vLLM is not installed"):
        eval_engines.choose("vllm", gpu=True, has_vllm=False)
    assert eval_engines.choose("auto") == "transformers"  # this machine: no GPU


def test_placement_one_replica_per_gpu_tensor_parallel_only_when_a_card_is_too_small():
    from sft_vs_rlvr.errors import UserError

    gib = 2 ** 30
    assert evaluation.placement("vllm", 16 * gib, 0, 0, None) == evaluation.Placement(0)
    assert evaluation.placement("vllm", 16 * gib, 4, 80 * gib, None) == evaluation.Placement(4, 1, ("0", "1", "2", "3"))
    assert evaluation.placement("vllm", 140 * gib, 4, 80 * gib, None) == evaluation.Placement(1, 4, ("0,1,2,3",))
    assert evaluation.placement("vllm", 60 * gib, 2, 40 * gib, None) == evaluation.Placement(1, 2, ("0,1",))
    with pytest.raises(UserError, match="does not fit one 40 GiB GPU with the transformers engine"):
        evaluation.placement("transformers", 60 * gib, 2, 40 * gib, None)
    with pytest.raises(UserError, match="does not fit 2 GPUs of 40 GiB"):
        evaluation.placement("vllm", 100 * gib, 2, 40 * gib, None)
    assert evaluation.placement("transformers", None, 0, 0, 2) == evaluation.Placement(2, 1, ("", ""))
    assert evaluation.placement("transformers", 2 ** 20, 4, 80 * gib, None) == evaluation.Placement(0)  # tiny model


def test_the_transformers_cap_keeps_the_kv_cache_of_a_call_within_the_free_memory():
    from transformers import LlamaConfig

    from sft_vs_rlvr.evaluate import engines as eval_engines

    llama8b = LlamaConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                          vocab_size=128256)
    per_token = eval_engines.kv_bytes_per_token(llama8b, 2)
    assert per_token == 2 * 32 * 8 * 128 * 2  # keys and values, 32 layers, 8 key-value heads of 128, bf16
    free = 60 * 2 ** 30
    cap = eval_engines.generation_cap(llama8b, 2, free, 662)
    assert cap * (per_token * 662 + 8 * 128256) <= 0.6 * free < (cap + 1) * (per_token * 662 + 8 * 128256)
    assert 64 * 16 > cap  # 64 prompts x 16 samples, the old unbounded call, would not fit
    assert eval_engines.generation_cap(llama8b, 2, 0, 662) == 1


@pytest.mark.slow
def test_workers_split_the_problems_and_the_merged_answers_equal_one_process(experiment):
    """Process per model and data parallel, with the real transformers engine in two CPU worker processes."""
    single = evaluate(experiment, "--models", "base")
    assert single.returncode == 0, single.stderr[-2000:]
    expected = atomic.read_jsonl(experiment / "eval" / "base_samples.jsonl")
    shutil.rmtree(experiment / "eval")
    split = evaluate(experiment, "--models", "base", "--replicas", "2")  # its workers are processes
    assert split.returncode == 0, split.stderr[-2000:]
    assert "eval: base: 2 worker process(es)" in split.stdout
    merged = atomic.read_jsonl(experiment / "eval" / "base_samples.jsonl")
    assert [s["id"] for s in merged] == [s["id"] for s in expected]  # merged back in problem order
    assert [s["response"] for s in merged] == [s["response"] for s in expected]  # greedy: same answers
    results = json.loads((experiment / "eval" / "base_results.json").read_text())
    assert results["placement"] == {"processes": 2, "tensor_parallel": 1}
    assert not list((experiment / "eval" / ".partial").glob("*"))


@pytest.mark.slow
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

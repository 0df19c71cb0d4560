"""--plan's arithmetic: budgets from the settings and the prepared data, memory per GPU, refusals.

The bounds below are the issue's (4 x A100-80GB must plan SFT within 1 hour and one RLVR epoch within
6 hours); they test the plan's own arithmetic under its printed assumptions, not a measured run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sft_vs_rlvr import prompts
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.launch import plan as plan_mod

REPO = Path(__file__).resolve().parent.parent
GIB = 2**30


@pytest.fixture
def no_gpu(monkeypatch):
    for name in ("NUM_GPUS", "NUM_NODES", "GPU_MEMORY_GIB", "FORCE", "CUDA_VISIBLE_DEVICES", "PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(plan_mod, "_visible_gpu", lambda: None)


def llama_plan(monkeypatch, gpus: str, nodes: str = "1", config_dir=None) -> plan_mod.Plan:
    monkeypatch.setenv("NUM_GPUS", gpus)
    monkeypatch.setenv("NUM_NODES", nodes)
    return plan_mod.build(settings_mod.load("llama8b", config_dir), data_dir=None)


def test_four_a100s_plan_sft_within_an_hour_and_an_rlvr_epoch_within_six(no_gpu, monkeypatch):
    plan = llama_plan(monkeypatch, "4")
    s = plan.settings
    sft, rl = plan.figures["sft"], plan.figures["rlvr"]
    assert plan.hardware.memory_gib == 80 and "A100" in plan.hardware.gpu_name
    assert sft["seconds_wall"] <= 3600, sft
    assert rl["expected"]["seconds_wall"] / s.rlvr["epochs"] <= 6 * 3600, rl["expected"]
    # the budget itself: whole passes over the prompts, so every epoch boundary is an optimizer step
    rows, prompts, samples = s.shared["train_size"], s.rlvr["prompts_per_step"], s.rlvr["samples_per_prompt"]
    rl_steps = s.rlvr["epochs"] * -(-rows // prompts)
    assert rl["optimizer_steps"] == rl_steps and rl["samples_generated"] == rl_steps * prompts * samples
    sft_epoch = -(-rows // s.sft["effective_batch_size"])
    assert sft["optimizer_steps"] == s.sft["epochs"] * sft_epoch
    assert plan.sft.per_device_batch_size * plan.sft.gradient_accumulation_steps * 4 == s.sft["effective_batch_size"]
    # snapshots at most as many as asked, at steps that divide an epoch (the equal-exposure point is one)
    assert sft_epoch % plan.layout.sft_checkpoint_every == 0 and 1 <= sft["checkpoints"] <= s.sft["checkpoints"]
    assert (rl_steps // s.rlvr["epochs"]) % plan.layout.rlvr_save_every == 0
    assert 1 <= rl["checkpoints"] <= s.rlvr["checkpoints"]


def test_sft_snapshots_keep_the_disk_to_the_newest_state_and_model_folders(no_gpu, monkeypatch):
    sft = llama_plan(monkeypatch, "4").figures["sft"]
    n, state, folder = sft["checkpoints"], sft["checkpoint_bytes"], sft["snapshot_bytes"]
    assert sft["disk_bytes_end"] == n * folder + sft["final_model_bytes"]
    assert sft["disk_bytes"] == 2 * state + n * folder + sft["final_model_bytes"]  # the peak
    assert sft["disk_bytes_without_snapshots"] == n * state + sft["final_model_bytes"]
    assert sft["disk_bytes_end"] <= 250 * GIB < sft["disk_bytes_without_snapshots"]
    assert plan_mod.snapshots_that_fit(sft["disk_bytes"], sft) == n
    assert plan_mod.snapshots_that_fit(sft["disk_bytes"] - folder, sft) == n - 1


def test_vllm_rates_scale_by_memory_bandwidth_not_peak_flops(no_gpu, monkeypatch):
    assumptions = tomllib.loads((REPO / "configs" / "plan.toml").read_text())
    h200 = plan_mod.Hardware("NVIDIA H200", 141.0, 989.0, "test")
    rate = plan_mod.vllm_rate(h200, assumptions)
    bandwidth = assumptions["memory_bandwidth_tb_s"]
    assert rate == pytest.approx(assumptions["throughput"]["vllm_tokens_per_second_a100"] * bandwidth["H200"]
                                 / bandwidth["A100"])


def test_cost_and_gpu_hours_follow_the_price_setting(no_gpu, monkeypatch, config_dir):
    text = (config_dir / "plan.toml").read_text().replace("price_per_gpu_hour = 2.0", "price_per_gpu_hour = 3.0")
    (config_dir / "plan.toml").write_text(text)
    plan = llama_plan(monkeypatch, "8", config_dir=config_dir)
    sft = plan.figures["sft"]
    assert sft["gpu_hours"] == pytest.approx(sft["seconds_wall"] / 3600 * 8)
    assert sft["cost"] == pytest.approx(sft["gpu_hours"] * 3.0)


def test_memory_parts_are_the_zero_arithmetic(no_gpu):
    assumptions = tomllib.loads((REPO / "configs" / "plan.toml").read_text())
    shape = plan_mod.ModelShape(8e9, 32, 4096, 14336, 128256, 1024, "test")
    two = plan_mod.sft_memory(shape, 2, 4, 4096, True, assumptions)
    assert (two["weights"], two["gradients"], two["optimizer"]) == (16e9, 4e9, 24e9)
    assert two["logits"] == 0 and two["zero3_live"] == 0
    three = plan_mod.sft_memory(shape, 3, 4, 4096, False, assumptions)
    assert (three["weights"], three["gradients"], three["optimizer"]) == (4e9, 4e9, 24e9)
    assert three["logits"] == 10 * 4096 * 128256 and three["zero3_live"] == 2e9
    learner = plan_mod.rl_learner_memory(shape, 3, 3, 1024, assumptions)
    assert learner["reference"] == pytest.approx(16e9 / 3) and learner["weight_sync_gather"] == 16e9


def test_zero_stage_and_micro_batch_follow_memory(no_gpu, monkeypatch):
    four, eight = llama_plan(monkeypatch, "4"), llama_plan(monkeypatch, "8")
    assert (four.sft.stage, four.sft.per_device_batch_size) == (2, 4)
    assert (eight.sft.stage, eight.sft.per_device_batch_size) == (2, 2)
    monkeypatch.setenv("GPU_MEMORY_GIB", "48")
    smaller = llama_plan(monkeypatch, "4")
    assert smaller.sft.stage == 3 and smaller.sft.fits  # ZeRO-2 no longer fits 48 GiB, ZeRO-3 does
    assert smaller.rlvr.stage == 3


def test_forty_gib_cards_are_refused_before_launch_and_force_overrides(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PROFILE", "EXPERIMENT_ID", "FORCE")}
    env.update(NUM_GPUS="4", GPU_MEMORY_GIB="40", OUTPUT_ROOT=str(tmp_path / "runs"), WANDB_MODE="offline",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    refused = subprocess.run(["./experiment_rlvr_llama8b.sh", "--dry-run"], cwd=REPO, env=env, capture_output=True,
                             text=True)
    assert refused.returncode == 2, refused.stderr
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "40 GiB" in line and "NUM_GPUS" in line and "FORCE=1" in line
    forced = subprocess.run(["./experiment_rlvr_llama8b.sh", "--dry-run"], cwd=REPO, env={**env, "FORCE": "1"},
                            capture_output=True, text=True)
    assert forced.returncode == 0 and "warning: FORCE=1" in forced.stderr
    assert not (tmp_path / "runs").exists()


def test_parameter_count_of_a_llama_config_matches_the_model(no_gpu):
    transformers = pytest.importorskip("transformers")
    config = dict(hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=300, tie_word_embeddings=False)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**config))
    assert plan_mod.shape_from_config(config, "t").parameters == sum(p.numel() for p in model.parameters())


def test_tokens_are_counted_from_the_prepared_rows(no_gpu, gsm8k_dir, config_dir, monkeypatch):
    # The llama8b settings on the real GSM8K rows: without Llama's tokenizer here, tokens are characters / 3.5.
    text = (config_dir / "experiment.toml").read_text().replace('dataset = "openai/gsm8k"', f'dataset = "{gsm8k_dir}"')
    (config_dir / "experiment.toml").write_text(text)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = settings_mod.load("llama8b", config_dir)
    assumptions = plan_mod.load_assumptions(config_dir)
    stats = plan_mod.data_stats(settings, None, assumptions)
    rows = [json.loads(line) for line in (gsm8k_dir / "train.jsonl").open()]
    instruction = settings.shared["instruction"]
    expected = 0.0
    for row in rows:
        messages = [{"role": "user", "content": prompts.user_content(row["question"], instruction)},
                    {"role": "assistant", "content": row["answer"]}]
        rendered = prompts.render(prompts.TULU_TEMPLATE, messages, "</s>", add_generation_prompt=False)
        expected += min(len(rendered) / 3.5, 1024)
    assert stats.train_rows == 7473 and stats.sft_tokens_per_epoch == pytest.approx(expected)
    # the GSM8K means in configs/plan.toml, used before data is prepared, agree with the rows
    fallback = plan_mod.data_stats(settings_mod.load("llama8b"), None, assumptions)
    assert fallback.sft_tokens_per_epoch == pytest.approx(expected, rel=0.02)


def test_plan_option_prints_the_budget_and_writes_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PROFILE", "EXPERIMENT_ID", "GPU_MEMORY_GIB")}
    env.update(NUM_GPUS="4", OUTPUT_ROOT=str(tmp_path / "runs"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for script, needle in (("./experiment_sft_llama8b.sh", "snapshots x"), ("./experiment_rlvr_llama8b.sh", "vLLM engine")):
        result = subprocess.run([script, "--plan"], cwd=REPO, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        for words in ("optimizer steps", "tokens trained", "samples generated", "GPU-hours", "USD", needle,
                      "Assumptions (configs/plan.toml)"):
            assert words in result.stdout, (script, words)
    assert not (tmp_path / "runs").exists()


def test_evaluation_plan_needs_no_gpu_count_and_covers_one_and_four_gpus(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PROFILE", "EXPERIMENT_ID", "NUM_GPUS", "GPU_MEMORY_GIB")}
    env.update(OUTPUT_ROOT=str(tmp_path / "runs"), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(["./evaluate_comparison.sh", "--plan"], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for gpus in (1, 4):
        for case in ("greedy, final models", "sampled (16 per problem), final models", "greedy, checkpoints",
                     "reference protocol", "total"):
            assert f"  {gpus} x NVIDIA A100-SXM4-80GB, {case}" in result.stdout
    assert not (tmp_path / "runs").exists()

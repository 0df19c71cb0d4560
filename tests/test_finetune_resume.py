"""open-instruct v0.3.0's finetune.py on a CPU, called directly with the llama8b launcher's SFT flags: it trains the
tiny model, writes its states and W&B run, and resumes from its last state.

A module of its own so that pytest-xdist (--dist loadscope) can run it beside test_open_instruct_real.py's launcher
test: each launches finetune.py (20-50 s on 2 cores). Skips where open-instruct's checkout or environment is absent.
"""

from __future__ import annotations

import json
import math
import subprocess

import pytest
from test_open_instruct_real import SCRIPTS, checkout_and_python, edited, launcher_command, oi_environment

from sft_vs_rlvr import data_prep, settings
from sft_vs_rlvr.launch import hf_cache, oi_flags
from sft_vs_rlvr.report import wandb_runs

pytestmark = pytest.mark.slow


def test_finetune_trains_the_tiny_model_on_cpu_and_resumes_from_its_checkpoint(tmp_path, tiny_base):
    """The llama8b launcher's SFT flags, minus DeepSpeed and Liger, on the tiny model: 10 steps, checkpoints
    every 5, offline W&B; then the same command with 12 steps resumes from step_10 (same output dir)."""
    checkout, python = checkout_and_python()
    shared = settings.load("tiny").shared
    model_id = hf_cache.register(tiny_base, tmp_path / "hub")
    data = tmp_path / "sft_train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in data_prep.build(shared)["sft_train.jsonl"]))

    _, arguments = oi_flags.split_command(launcher_command(SCRIPTS["sft"], tmp_path, NUM_GPUS="4"))
    arguments = edited(arguments, {
        "--model_name_or_path": [model_id], "--tokenizer_name_or_path": [model_id],
        "--dataset_mixer_list": [str(data), "1.0"], "--output_dir": [str(tmp_path / "output")],
        "--dataset_local_cache_dir": [str(tmp_path / "dataset_cache")],
        "--max_seq_length": ["160"], "--per_device_train_batch_size": ["4"], "--checkpointing_steps": ["5"],
        "--max_train_steps": ["10"],
        "--use_liger_kernel": None,  # Triton kernels: GPU only, and not installed in the CPU environment
    })
    launch = [str(python.parent / "accelerate"), "launch", "--cpu", "--num_processes", "1",
              "--num_cpu_threads_per_process", "1", "--mixed_precision", "no", "-m", "sft_vs_rlvr.launch.oi_cpu",
              str(checkout / "open_instruct" / "finetune.py")]
    env = oi_environment(checkout, HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_OFFLINE="1",
                         HF_DATASETS_CACHE=str(tmp_path / "datasets"), WANDB_MODE="offline",
                         WANDB_DIR=str(tmp_path), TOKENIZERS_PARALLELISM="false")
    first = subprocess.run(launch + arguments, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-5000:]

    out = tmp_path / "output" / "sft"  # <output_dir>/<exp_name>
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert (out / "tokenizer.json").is_file() and (out / "chat_template.jinja").is_file()
    for step in ("step_5", "step_10"):
        assert (out / step / "COMPLETED").read_text() == "COMPLETED"
        assert (out / step / "model.safetensors").is_file() and (out / step / "optimizer.bin").is_file()
    # accelerate 1.12 in WANDB_MODE=offline finishes its first run and starts a second one carrying the
    # config, so there are two run folders; latest-run is the one with the history.
    runs = {path.name: wandb_runs.read_offline_history(path) for path in (tmp_path / "wandb").glob("offline-run-*")}
    assert sorted(map(len, runs.values())) == [0, 10]
    history = runs[(tmp_path / "wandb" / "latest-run").resolve().name]
    assert [row["_step"] for row in history] == list(range(1, 11))
    assert all(math.isfinite(row["train_loss"]) and row["allocated_mem_GiB"] == 0 for row in history)

    second = subprocess.run(launch + edited(arguments, {"--max_train_steps": ["12"]}), cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-5000:]
    assert f"Resumed from checkpoint: {out / 'step_10'}" in second.stdout
    assert "completed_steps=10" in second.stdout

"""Preflight checks of the GPU path, each run for real on this machine where it can be.

The Hub check never reaches the network here: the cases tested fail (or pass) before any request.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.errors import UserError
from sft_vs_rlvr.launch import layouts, preflight

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_hub_login(tmp_path, monkeypatch):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no stored token, empty cache


def test_missing_token_for_a_gated_hub_model_is_refused(no_hub_login):
    with pytest.raises(UserError, match=r"^no Hugging Face token, and meta-llama/Llama-3.1-8B is gated; accept its "
                                        r"licence on https://huggingface.co/meta-llama/Llama-3.1-8B, then run"):
        preflight.check_hub_access("meta-llama/Llama-3.1-8B")


def test_offline_hub_needs_the_model_in_the_local_cache(no_hub_login, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="not in the local Hugging Face cache"):
        preflight.check_hub_access("meta-llama/Llama-3.1-8B")


def test_local_model_folder_needs_no_hub(no_hub_login, tmp_path):
    assert "no Hub access needed" in preflight.check_hub_access(str(tmp_path))


def test_too_little_disk_is_refused_with_the_fix(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(UserError, match=r"^sft needs about .* GiB .* free; .*OUTPUT_ROOT.*'checkpoints' in configs/sft.toml"):
        preflight.check_disk(tmp_path / "runs" / "not-yet", free * 2, "sft")
    assert "GiB free" in preflight.check_disk(tmp_path / "runs", free / 2, "rlvr")


def test_ray_needs_ten_cpus_per_learner_gpu_or_a_logical_count(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(preflight.Path, "exists", lambda self: False)  # no local Ray cluster
    four = layouts.Layout(4, 1, 4, 4, 936, 468, 117, 3, 1, 117, 117, 59904, 13, 13)
    eight = layouts.Layout(8, 1, 8, 2, 936, 468, 117, 6, 2, 117, 117, 59904, 13, 13)
    assert preflight.ray_cpus_needed(four) == 34 and preflight.ray_cpus_needed(eight) == 65
    with pytest.raises(UserError, match=r"'ray start --head --num-cpus=34'"):
        preflight.check_ray(four, cpus=16)
    assert "34 needed" in preflight.check_ray(four, cpus=64)


def test_wandb_online_without_a_key_is_refused_offline_is_said(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "absent-netrc"))
    settings = settings_mod.load("llama8b")
    monkeypatch.setenv("WANDB_MODE", "online")
    with pytest.raises(UserError, match="no W&B key"):
        preflight.check_wandb(settings)
    monkeypatch.delenv("WANDB_MODE")
    assert preflight.check_wandb(settings).startswith("W&B: offline (no W&B login found")


def test_no_visible_gpu_is_refused(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    layout = layouts.Layout(4, 1, 4, 4, 936, 468, 117, 3, 1, 117, 117, 59904, 13, 13)
    with pytest.raises(UserError, match="no GPU is visible"):
        preflight.check_gpus(layout)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with pytest.raises(UserError, match="NUM_GPUS=4 but only 2 GPU"):
        preflight.check_gpus(layout)


def test_a_command_with_a_flag_open_instruct_lacks_is_refused():
    with pytest.raises(UserError, match="--use_flash_attn"):
        preflight.command(["accelerate", "launch", "open_instruct/finetune.py", "--model_name_or_path", "m",
                           "--use_flash_attn"])


def test_missing_token_stops_the_launcher_before_anything_is_written(tmp_path):
    """Launcher level: needs the open-instruct checkout and environment, which come before the Hub check."""
    from sft_vs_rlvr.launch import open_instruct
    try:
        open_instruct.check()
    except UserError as error:
        pytest.skip(f"open-instruct is not set up here ({error})")
    env = {k: v for k, v in os.environ.items() if k not in ("PROFILE", "EXPERIMENT_ID", "HF_TOKEN",
                                                              "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE")}
    env.update(NUM_GPUS="4", CUDA_VISIBLE_DEVICES="0,1,2,3", OUTPUT_ROOT=str(tmp_path / "runs"),
               HF_HOME=str(tmp_path / "hf"), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(["./experiment_sft_llama8b.sh"], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: no Hugging Face token")
    assert not (tmp_path / "runs").exists()


def test_too_little_disk_stops_the_launcher_before_anything_is_written(tmp_path, config_dir):
    """Launcher level, with a local 8B-shaped base model folder (a config.json is all --plan reads), so no Hub
    check; the SFT arm's peak (two DeepSpeed states and its snapshots) needs more disk than this machine has free."""
    from sft_vs_rlvr.launch import open_instruct
    try:
        open_instruct.check()
    except UserError as error:
        pytest.skip(f"open-instruct is not set up here ({error})")
    model = tmp_path / "llama-shaped"
    model.mkdir()
    (model / "config.json").write_text('{"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, '
                                       '"num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256}')
    text = (config_dir / "experiment.toml").read_text()
    (config_dir / "experiment.toml").write_text(text.replace('base_model = "meta-llama/Llama-3.1-8B"',
                                                             f'base_model = "{model}"'))
    if shutil.disk_usage(tmp_path).free > 400 * 2**30:
        pytest.skip("this machine has more free disk than the SFT arm needs")
    env = {k: v for k, v in os.environ.items() if k not in ("PROFILE", "EXPERIMENT_ID")}
    env.update(NUM_GPUS="4", CUDA_VISIBLE_DEVICES="0,1,2,3", OUTPUT_ROOT=str(tmp_path / "runs"), GPU_MEMORY_GIB="80",
               CONFIG_DIR=str(config_dir), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(["./experiment_sft_llama8b.sh"], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert re.match(r"error: sft needs about \d+ GiB for its checkpoints but ", last) and "GiB free" in last
    assert not (tmp_path / "runs").exists()

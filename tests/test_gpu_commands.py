"""The llama8b profile's open-instruct commands, as `--dry-run` prints them, on a CPU.

Every layout's command is checked against the committed flag manifest of open-instruct v0.3.0 and
against the fairness contract; nothing here needs a GPU, open-instruct or the network.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import pasted_argv

from sft_vs_rlvr import contract
from sft_vs_rlvr.launch import oi_flags, open_instruct

REPO = Path(__file__).resolve().parent.parent
LAYOUTS = {"4 GPUs": {"NUM_GPUS": "4"}, "8 GPUs": {"NUM_GPUS": "8"}, "2 nodes x 8": {"NUM_GPUS": "8", "NUM_NODES": "2"},
           "hybrid arm, 4 GPUs": {"NUM_GPUS": "4", "INIT_FROM": "sft"}}


def dry_run(script: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if k not in ("PROFILE", "EXPERIMENT_ID", "FRESH", "NUM_GPUS", "NUM_NODES", "INIT_FROM", "GPU_MEMORY_GIB")}
    base.update(OUTPUT_ROOT=str(tmp_path / "runs"), OPEN_INSTRUCT_DIR=str(tmp_path / "oi"), WANDB_MODE="offline",
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **env)
    return subprocess.run([script, "--dry-run"], cwd=REPO, env=base, capture_output=True, text=True)


def command(script: str, tmp_path: Path, **env: str) -> list[str]:
    result = dry_run(script, tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return pasted_argv(result.stdout)


@pytest.fixture(scope="module")
def commands(tmp_path_factory):
    """commands(script, **env) -> its --dry-run command, each distinct one run once per module (about 1 s each)."""
    root = tmp_path_factory.mktemp("dry")

    @functools.cache
    def run(script: str, env: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
        return tuple(command(script, root, **dict(env)))

    def get(script: str, **env: str) -> list[str]:
        argv = list(run(script, tuple(sorted(env.items()))))
        assert not (root / "runs").exists()  # --dry-run writes nothing
        return argv

    return get


def flag_values(argv: list[str], flag: str) -> list[str]:
    position = argv.index(flag)
    values = []
    for token in argv[position + 1:]:
        if token.startswith("--"):
            break
        values.append(token)
    return values


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_parses_against_the_pinned_flag_manifest(layout, commands):
    for script in ("./experiment_sft_llama8b.sh", "./experiment_rlvr_llama8b.sh"):
        entrypoint, arguments = oi_flags.split_command(commands(script, **LAYOUTS[layout]))
        assert oi_flags.check(entrypoint, arguments) == [], (script, layout)


def test_the_checker_catches_the_original_experiments_flags():
    # The fork's SFT and RLVR flags that open-instruct renamed or removed (open-instruct-notes.md §0).
    assert any("--use_flash_attn" in p for p in oi_flags.check("finetune", ["--model_name_or_path", "m", "--use_flash_attn"]))
    problems = oi_flags.check("grpo_fast", ["--model_name_or_path", "m", "--max_token_length", "2048",
                                            "--num_evals", "50", "--wandb_project_name", "p"])
    assert len([p for p in problems if "unknown flag" in p]) == 3
    assert oi_flags.check("grpo_fast", ["--model_name_or_path", "m", "--beta", "high"]) == \
        ["grpo_fast: --beta needs a float, got 'high'"]
    assert oi_flags.check("grpo_fast", []) == ["grpo_fast: required flag --model_name_or_path is missing"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_both_arms_are_fair_by_construction(layout, commands):
    sft = commands("./experiment_sft_llama8b.sh", **LAYOUTS[layout])
    rl = commands("./experiment_rlvr_llama8b.sh", **LAYOUTS[layout])
    hybrid = LAYOUTS[layout].get("INIT_FROM") == "sft"
    for flag in ("--seed", "--chat_template_name", "--tokenizer_name_or_path"):
        assert flag_values(sft, flag) == flag_values(rl, flag), flag
    # one tokenizer, the experiment's prepared one (base tokenizer, in-vocabulary pad: tokenizer_prep.py)
    assert Path(flag_values(sft, "--tokenizer_name_or_path")[0]) == \
        Path(flag_values(sft, "--dataset_mixer_list")[0]).parent / "tokenizer"
    # open-instruct's tokenized-data cache stays in the run folder, not in the working directory
    for argv in (sft, rl):
        assert Path(flag_values(argv, "--dataset_local_cache_dir")[0]).parent == Path(flag_values(argv, "--output_dir")[0]).parent
    if hybrid:  # GRPO starts from the SFT arm's final model folder: finetune.py's <output_dir>/<exp_name>
        output_dir, name = flag_values(sft, "--output_dir")[0], flag_values(sft, "--exp_name")[0]
        assert flag_values(rl, "--model_name_or_path") == [str(Path(output_dir) / name)]
        assert flag_values(rl, "--exp_name") == ["sft_rlvr"] and "/sft_rlvr/" in flag_values(rl, "--output_dir")[0]
    else:
        assert flag_values(sft, "--model_name_or_path") == flag_values(rl, "--model_name_or_path")
    assert flag_values(sft, "--max_seq_length") == flag_values(rl, "--pack_length")
    sft_data = Path(flag_values(sft, "--dataset_mixer_list")[0])
    rl_data = Path(flag_values(rl, "--dataset_mixer_list")[0])
    assert sft_data.parent == rl_data.parent and (sft_data.name, rl_data.name) == ("sft_train.jsonl", "rl_train.jsonl")
    assert flag_values(sft, "--dataset_mixer_list")[1] == flag_values(rl, "--dataset_mixer_list")[1] == "1.0"
    # never push to the Hub, never launch Beaker jobs
    assert flag_values(sft, "--push_to_hub") == ["false"] and flag_values(rl, "--push_to_hub") == ["false"]
    assert flag_values(sft, "--try_launch_beaker_eval_jobs") == ["false"]
    # RL in-loop evaluation on the test split, never training rows; no format gate
    assert Path(flag_values(rl, "--dataset_mixer_eval_list")[0]).name == "test.jsonl"
    assert flag_values(rl, "--apply_r1_style_format_reward") == ["false"]
    # intermediate checkpoints will exist and are kept
    sft_steps, every = 936, int(flag_values(sft, "--checkpointing_steps")[0])
    assert 1 <= every < sft_steps and flag_values(sft, "--clean_checkpoints_at_end") == ["false"]
    rl_steps = int(flag_values(rl, "--total_episodes")[0]) // (
        int(flag_values(rl, "--num_unique_prompts_rollout")[0]) * int(flag_values(rl, "--num_samples_per_prompt_rollout")[0]))
    assert rl_steps * 64 >= 7473 - 64  # one full epoch over the training prompts
    assert 1 <= int(flag_values(rl, "--save_freq")[0]) < rl_steps
    assert flag_values(rl, "--checkpoint_state_dir")  # resumable


@pytest.mark.slow  # runs the report or a subprocess (3-5 s)
def test_layouts_scale_without_changing_what_is_learned(commands):
    four = commands("./experiment_sft_llama8b.sh", NUM_GPUS="4")
    eight = commands("./experiment_sft_llama8b.sh", NUM_GPUS="8")
    two_nodes = commands("./experiment_sft_llama8b.sh", NUM_GPUS="8", NUM_NODES="2")

    def effective(argv):
        return int(flag_values(argv, "--num_processes")[0]) * int(flag_values(argv, "--per_device_train_batch_size")[0]) \
            * int(flag_values(argv, "--gradient_accumulation_steps")[0])

    assert effective(four) == effective(eight) == effective(two_nodes) == 16
    assert flag_values(two_nodes, "--num_machines") == ["2"]
    rl4 = commands("./experiment_rlvr_llama8b.sh", NUM_GPUS="4")
    rl16 = commands("./experiment_rlvr_llama8b.sh", NUM_GPUS="8", NUM_NODES="2")
    assert flag_values(rl4, "--num_learners_per_node") == ["3"] and flag_values(rl4, "--vllm_num_engines") == ["1"]
    assert flag_values(rl16, "--num_learners_per_node") == ["6", "6"] and flag_values(rl16, "--vllm_num_engines") == ["4"]
    assert flag_values(rl4, "--total_episodes") == flag_values(rl16, "--total_episodes")


def test_gpu_count_without_a_layout_is_refused_before_anything_is_written(tmp_path):
    result = dry_run("./experiment_rlvr_llama8b.sh", tmp_path, NUM_GPUS="3")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: no layout for 3 GPUs per node; set NUM_GPUS to one of 4, 8 "
                                     "(or add a [gpus.N] entry to configs/layouts.toml)")
    assert not (tmp_path / "runs").exists()


def test_missing_open_instruct_is_refused_before_anything_is_written(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PROFILE", "EXPERIMENT_ID")}
    # CUDA_VISIBLE_DEVICES stands in for four GPUs, so the preflight gets past the GPU check on a CPU.
    env.update(OUTPUT_ROOT=str(tmp_path / "runs"), OPEN_INSTRUCT_DIR=str(tmp_path / "absent"), NUM_GPUS="4",
               CUDA_VISIBLE_DEVICES="0,1,2,3", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(["./experiment_sft_llama8b.sh"], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == \
        f"error: open-instruct is not installed at {tmp_path / 'absent'}; run 'make setup-gpu' (or set OPEN_INSTRUCT_DIR)"
    assert not (tmp_path / "runs").exists()


def test_committed_flag_manifests_match_a_fresh_extraction(tmp_path):
    git_dir = os.environ.get("OPEN_INSTRUCT_GIT_DIR") or (
        str(open_instruct.checkout_dir() / ".git") if (open_instruct.checkout_dir() / ".git").exists() else None)
    if not git_dir:
        pytest.skip("no open-instruct checkout or mirror here (make setup-gpu, or OPEN_INSTRUCT_GIT_DIR)")
    subprocess.run([sys.executable, str(REPO / "scripts" / "extract_open_instruct_flags.py"), "--git-dir", git_dir,
                    "--rev", contract.OPEN_INSTRUCT_COMMIT, "--label", contract.OPEN_INSTRUCT_TAG,
                    "--output-dir", str(tmp_path)], check=True, capture_output=True)
    for entrypoint in ("finetune", "grpo_fast"):
        fresh = json.loads((tmp_path / f"{entrypoint}_{contract.OPEN_INSTRUCT_TAG}.json").read_text())
        committed = json.loads((oi_flags.FLAGS_DIR / f"{entrypoint}_{contract.OPEN_INSTRUCT_TAG}.json").read_text())
        assert [f["flag"] for f in fresh["flags"]] == [f["flag"] for f in committed["flags"]]
        assert fresh["flags"] == committed["flags"]


def test_checkout_at_another_commit_is_reported_not_used(tmp_path):
    checkout = tmp_path / "oi"
    (checkout / "open_instruct").mkdir(parents=True)
    (checkout / "open_instruct" / "finetune.py").write_text("# not the real one\n")
    git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "x"], check=True)
    result = subprocess.run([sys.executable, "-m", "sft_vs_rlvr.launch.open_instruct", "check"], cwd=REPO,
                            env={**os.environ, "OPEN_INSTRUCT_DIR": str(checkout)}, capture_output=True, text=True)
    assert result.returncode == 2
    assert "not the pinned v0.3.0 (26de99604)" in result.stderr and f"git -C {checkout} checkout v0.3.0" in result.stderr

"""open-instruct v0.3.0 itself, on a CPU: its own parsers judge the launchers' commands, and finetune.py
trains the tiny model end to end.

Needs the checkout and its CPU environment (scripts/setup_open_instruct_cpu.sh, about 2 GB, 1.5 minutes);
every test skips, saying so, where either is absent. test_gpu_commands.py checks the same commands
against the committed flag manifest without open-instruct.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import pasted_argv, reduced_configs

from sft_vs_rlvr import contract, settings
from sft_vs_rlvr.launch import layouts, oi_flags, open_instruct
from sft_vs_rlvr.report import wandb_runs

REPO = Path(__file__).resolve().parent.parent
# Every test here imports open-instruct in its own environment (10-40 s each on 2 cores): not for make test-fast.
pytestmark = pytest.mark.slow
LAYOUTS = {"4 GPUs": {"NUM_GPUS": "4"}, "8 GPUs": {"NUM_GPUS": "8"}, "2 nodes x 8": {"NUM_GPUS": "8", "NUM_NODES": "2"},
           "hybrid arm, 4 GPUs": {"NUM_GPUS": "4", "INIT_FROM": "sft"}}
# The dress rehearsal's GRPO command (make gpu-check): the tiny model through grpo_fast.py in single-GPU mode.
TINY_SINGLE_GPU = {"PROFILE": "tiny", "RLVR_TRAINER": "open-instruct"}
SCRIPTS = {"sft": "./experiment_sft_llama8b.sh", "rlvr": "./experiment_rlvr_llama8b.sh"}
TRUE_WORDS = {"true", "yes", "1", "t", "y"}


def checkout_and_python() -> tuple[Path, Path]:
    checkout = open_instruct.checkout_dir()
    python = checkout / ".venv" / "bin" / "python"
    if not (checkout / "open_instruct" / "finetune.py").is_file():
        pytest.skip(f"no open-instruct checkout at {checkout} (scripts/setup_open_instruct_cpu.sh makes one)")
    if open_instruct.checkout_commit(checkout) != contract.OPEN_INSTRUCT_COMMIT:
        pytest.skip(f"open-instruct at {checkout} is not at the pinned {contract.OPEN_INSTRUCT_TAG}")
    if not python.is_file():
        pytest.skip(f"no environment at {python.parent.parent} (scripts/setup_open_instruct_cpu.sh makes one)")
    return checkout, python


def oi_environment(checkout: Path, **extra: str) -> dict[str, str]:
    """This repository and the checkout importable; litellm kept off the network at import."""
    assert checkout == open_instruct.checkout_dir()
    return {**open_instruct.environment(), **extra}


def launcher_command(script: str, tmp_path: Path, **env: str) -> list[str]:
    """The last line of `<script> --dry-run` for the llama8b profile, as in test_gpu_commands.py."""
    base = {k: v for k, v in os.environ.items() if k not in ("PROFILE", "EXPERIMENT_ID", "FRESH", "NUM_GPUS",
                                                             "NUM_NODES", "INIT_FROM", "GPU_MEMORY_GIB")}
    base.update(OUTPUT_ROOT=str(tmp_path / "runs"), OPEN_INSTRUCT_DIR=str(tmp_path / "oi"), WANDB_MODE="offline",
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **env)
    result = subprocess.run([script, "--dry-run"], cwd=REPO, env=base, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return pasted_argv(result.stdout)


def flags(arguments: list[str]) -> dict[str, list[str]]:
    """--flag -> the values after it, in command order."""
    parsed: dict[str, list[str]] = {}
    for token in arguments:
        if token.startswith("--"):
            current = parsed.setdefault(token, [])
        else:
            current.append(token)
    return parsed


def same_value(parsed, given: list[str]) -> bool:
    """Whether open-instruct's parsed value is what the command's words say."""
    if not given:  # a bare boolean flag
        return parsed is True
    if isinstance(parsed, bool):
        return len(given) == 1 and (given[0].lower() in TRUE_WORDS) == parsed
    if isinstance(parsed, list):
        return [str(item) for item in parsed] == given
    if isinstance(parsed, float):
        return len(given) == 1 and float(given[0]) == parsed
    return len(given) == 1 and str(parsed) == given[0]


# Commands open-instruct must refuse: (entrypoint, what to change in the SFT or RL command, expected reason).
BAD = {
    "push_to_hub off but Beaker evals left on": (
        "finetune", {"--try_launch_beaker_eval_jobs": None},
        "ValueError: Cannot launch Beaker evaluation jobs without pushing to the Hub."),
    "a flag finetune.py no longer has": (
        "finetune", {"--use_flash_attn": []},
        "ValueError: Some specified arguments are not used by the HfArgumentParser: ['--use_flash_attn']"),
    "a flag grpo_fast.py no longer has": (
        "grpo_fast", {"--max_token_length": ["2048"]},
        "ValueError: Some specified arguments are not used by the HfArgumentParser: ['--max_token_length', '2048']"),
    "a value of the wrong type": (
        "grpo_fast", {"--beta": ["high"]}, "argument --beta: invalid float value: 'high'"),
}


def edited(arguments: list[str], changes: dict[str, list[str] | None]) -> list[str]:
    """arguments with each flag in changes replaced by its new values (None: removed; absent: appended)."""
    parsed = flags(arguments)
    for flag, values in changes.items():
        if values is None:
            parsed.pop(flag)
        else:
            parsed[flag] = values
    return [word for flag, values in parsed.items() for word in (flag, *values)]


# `python -m sft_vs_rlvr.launch.oi_parse ARGS` with STDIN on its standard input, run as __main__ by runpy inside
# the worker's open-instruct probe process (open-instruct's imports paid once per worker, not once per command).
RUN_OI_PARSE = """
import contextlib, io, json, runpy, sys
protocol, sys.stdin = sys.stdin, io.StringIO(sys.argv.pop(1))
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
        runpy.run_module("sft_vs_rlvr.launch.oi_parse", run_name="__main__", alter_sys=True)
        status = 0
    except SystemExit as exit:
        status = exit.code
    finally:
        sys.stdin = protocol
print(json.dumps({"status": status, "stdout": out.getvalue(), "stderr": err.getvalue()}))
"""


def run_oi_parse(probe, stdin: str, *args: str) -> dict:
    return json.loads(probe(RUN_OI_PARSE, stdin, *args).strip().splitlines()[-1])


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory, open_instruct_probe):
    """One `oi_parse --batch` run over every layout's two commands and the bad ones (pays the imports once)."""
    checkout_and_python()
    tmp_path = tmp_path_factory.mktemp("dry")
    commands = {}
    for layout, env in LAYOUTS.items():
        for arm, script in SCRIPTS.items():
            commands[layout, arm] = oi_flags.split_command(launcher_command(script, tmp_path, **env))
    commands["tiny single GPU", "rlvr"] = oi_flags.split_command(
        launcher_command(SCRIPTS["rlvr"], tmp_path, **TINY_SINGLE_GPU))
    for name, (entry, changes, _) in BAD.items():
        arm = "sft" if entry == "finetune" else "rlvr"
        commands[name] = (entry, edited(commands["4 GPUs", arm][1], changes))
    lines = "".join(json.dumps([entry, arguments]) + "\n" for entry, arguments in commands.values())
    result = run_oi_parse(open_instruct_probe, lines, "--batch")
    assert result["status"] == 0, result["stderr"][-3000:]
    answers = [json.loads(line) for line in result["stdout"].splitlines()]
    assert len(answers) == len(commands), result["stderr"][-3000:]
    return {key: (commands[key], answer) for key, answer in zip(commands, answers)}


@pytest.mark.parametrize("arm", SCRIPTS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_open_instructs_own_parser_reads_every_flag_as_the_launcher_meant(verdicts, layout, arm):
    (entry, arguments), answer = verdicts[layout, arm]
    assert answer["ok"], answer.get("error")
    values = answer["values"]
    for flag, given in flags(arguments).items():
        name = flag[2:]
        assert name in values, f"{flag} is not a field of {entry}"
        assert same_value(values[name], given), f"{flag} {given} parsed as {values[name]!r}"
    assert values["seed"] == 42 and values["push_to_hub"] is False and values["chat_template_name"] == "tulu"
    assert values["with_tracking"] is True and values["wandb_entity"]
    if entry == "finetune":
        assert values["try_launch_beaker_eval_jobs"] is False and values["report_to"] == ["wandb"]
    else:  # grpo_fast's parser.set_defaults and __post_init__ ran
        assert values["warmup_ratio"] == 0.0 and values["max_grad_norm"] == 1.0
        assert isinstance(values["stop_strings"], list)  # None became [] in __post_init__


def test_the_dress_rehearsals_single_gpu_grpo_command_parses_as_meant(verdicts):
    """PROFILE=tiny RLVR_TRAINER=open-instruct: one learner and one vLLM engine sharing the card, the contract's
    stop strings, the tiny settings' sizes."""
    (entry, arguments), answer = verdicts["tiny single GPU", "rlvr"]
    assert entry == "grpo_fast" and answer["ok"], answer.get("error")
    values = answer["values"]
    for flag, given in flags(arguments).items():
        assert same_value(values[flag[2:]], given), f"{flag} {given} parsed as {values[flag[2:]]!r}"
    tiny = settings.load("tiny")
    assert values["single_gpu_mode"] is True and values["vllm_num_engines"] == 1
    assert values["num_learners_per_node"] == [1] and values["push_to_hub"] is False
    assert values["stop_strings"] == list(tiny.shared["stop_strings"])
    assert values["num_samples_per_prompt_rollout"] == tiny.rlvr["samples_per_prompt"]
    assert values["beta"] == tiny.rlvr["beta"] and values["seed"] == tiny.shared["seed"]


@pytest.mark.parametrize("name", BAD)
def test_open_instruct_refuses_what_it_cannot_run(verdicts, name):
    (entry, _), answer = verdicts[name]
    assert answer == {"ok": False, "error": f"open-instruct {entry} parser rejected the command: {BAD[name][2]}"}


def test_a_refusal_is_one_line_and_exit_status_2(open_instruct_probe):
    checkout_and_python()
    result = run_oi_parse(open_instruct_probe, "", "finetune", "--", "--model_name_or_path", "m",
                          "--push_to_hub", "false")
    assert result["status"] == 2 and result["stdout"] == ""
    assert result["stderr"].strip().splitlines()[-1] == (
        "error: open-instruct finetune parser rejected the command: "
        "ValueError: Cannot launch Beaker evaluation jobs without pushing to the Hub.")


def test_the_sft_launcher_runs_real_finetune_on_cpu_and_the_later_stages_read_its_output(tmp_path):
    """PROFILE=tiny SFT_TRAINER=open-instruct: the launcher's own finetune.py command (minus DeepSpeed and
    Liger), its manifest, checkpoint index and W&B run; then evaluation and the report on that model."""
    checkout_and_python()
    env = {k: v for k, v in os.environ.items() if k not in ("EXPERIMENT_ID", "FRESH", "WANDB_MODE", "CONFIG_DIR")}
    # The tiny profile on fewer rows (fewer steps, the same snapshot rule); the reference protocol and the
    # out-of-distribution set are the end-to-end test's business, not this one's.
    configs = reduced_configs(tmp_path, extra_evaluations=False)
    env.update(PROFILE="tiny", SFT_TRAINER="open-instruct", OUTPUT_ROOT=str(tmp_path / "runs"), CONFIG_DIR=str(configs),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    sft = subprocess.run(["./experiment_sft_llama8b.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=900)
    assert sft.returncode == 0, sft.stdout[-3000:] + sft.stderr[-3000:]
    assert "open-instruct v0.3.0 parser accepts the finetune command" in sft.stderr
    run = tmp_path / "runs" / "tiny-seed42" / "sft"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["final_model"] == "output/sft"
    assert "open_instruct/finetune.py" in manifest["command_line"] and "--packing" in manifest["command"]
    steps = [c["step"] for c in manifest["checkpoints"]]
    tiny = settings.load("tiny", configs)
    layout = layouts.resolve(tiny)  # snapshots at the steps that divide an epoch
    assert steps == list(range(layout.sft_checkpoint_every, layout.sft_steps + 1, layout.sft_checkpoint_every))
    # The snapshot watcher turned each state finetune.py wrote into a model folder and pruned the states.
    assert all(c["kind"] == "hf_model" and (run / c["path"] / "config.json").is_file() for c in manifest["checkpoints"])
    assert not list((run / "output" / "sft").glob("step_*"))
    history = wandb_runs.read_offline_history(wandb_runs.find_offline_run(run / "wandb", manifest["wandb"]["run_id"]))
    assert len(history) == steps[-1] and all(math.isfinite(row["train_loss"]) for row in history)

    evaluated = subprocess.run(["./evaluate_comparison.sh", "--models", "base,sft"], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    results = json.loads((tmp_path / "runs" / "tiny-seed42" / "eval" / "sft_results.json").read_text())
    assert results["n"] == tiny.shared["test_size"] and 0.0 <= results["accuracy"] <= 1.0
    reported = subprocess.run([sys.executable, "analyze_results.py"], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=600)
    assert reported.returncode == 0, reported.stderr[-3000:]
    report = json.loads((tmp_path / "runs" / "tiny-seed42" / "report" / "report.json").read_text())
    sft_curves = report["dynamics"]["sft"]["metrics"]
    assert sft_curves["loss"]["key"] == "train_loss" and sft_curves["loss"]["n_points"] == len(history)


def test_open_instructs_tokenizer_loader_adds_no_token_to_the_prepared_tokenizer(tmp_path, open_instruct_probe):
    """Without the prepared pad, open-instruct's loader appends <pad> past the vocabulary (the id grpo_fast
    would feed an un-resized Llama 3.1); with it, the vocabulary and the model's shapes stay as they are."""
    from test_tokenizer_prep import llama_like_tokenizer

    from sft_vs_rlvr.launch import tokenizer_prep

    checkout_and_python()
    raw = llama_like_tokenizer(tmp_path / "raw")
    prepared = tokenizer_prep.prepare(str(raw), tmp_path / "prepared")
    probe = (
        "import json, sys\n"
        "from open_instruct.dataset_transformation import TokenizerConfig, get_tokenizer_tulu_v2_2\n"
        "out = {}\n"
        "for path in sys.argv[1:]:\n"
        "    t = get_tokenizer_tulu_v2_2(TokenizerConfig(tokenizer_name_or_path=path, chat_template_name='tulu'))\n"
        "    out[path] = [len(t), t.pad_token, t.pad_token_id]\n"
        "print(json.dumps(out))\n")
    seen = json.loads(open_instruct_probe(probe, str(raw), str(prepared)).strip().splitlines()[-1])
    size = len(json.loads((raw / "tokenizer.json").read_text())["model"]["vocab"])
    assert seen[str(raw)] == [size + 1, "<pad>", size]  # a new token, one past the embedding matrix
    assert seen[str(prepared)][0] == size and seen[str(prepared)][1] == "<|finetune_right_pad_id|>"

"""Shared fixtures. Tests that read the real GSM8K rows in ../shared skip where that folder is absent."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

# Under pytest-xdist (make test: one worker per core) each worker, and every trainer, evaluator or converter it
# starts in a subprocess, computes on one thread, so the workers do not oversubscribe the cores. Set before any
# test module imports torch; subprocesses inherit it.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")

REPO = Path(__file__).resolve().parent.parent
SHARED_GSM8K = REPO.parent / "shared" / "data" / "gsm8k"


@pytest.fixture
def gsm8k_dir() -> Path:
    if not (SHARED_GSM8K / "train.jsonl").is_file():
        pytest.skip(f"real GSM8K rows not present at {SHARED_GSM8K} (only in the project's own workspace)")
    return SHARED_GSM8K


@pytest.fixture(scope="session")
def tiny_base() -> Path:
    """The tiny base model of the committed settings, from the machine's model cache (built there on first use).

    A file lock lets one pytest-xdist worker build it while the others wait, instead of each building its own."""
    from filelock import FileLock

    from sft_vs_rlvr import settings as settings_mod
    from sft_vs_rlvr.tiny import model as tiny_model

    shared = settings_mod.load("tiny", REPO / "configs").shared
    keys = (shared["chat_template"], shared["instruction"])
    folder = tiny_model.model_dir(*keys)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{folder}.lock"):
        return tiny_model.ensure(*keys, log=lambda _: None)


# Runs each probe script sent on stdin (one JSON line: code and argv) as `python -c code args` would, its printed
# output captured, and answers one JSON line. The probes share one process: open-instruct's imports take 10-20 s
# on 2 cores, and each probe would otherwise pay them again.
_PROBE_SERVER = r"""
import contextlib, io, json, sys, traceback
for line in sys.stdin:
    request = json.loads(line)
    sys.argv = ["-c", *request["args"]]
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(request["code"], "<probe>", "exec"), {"__name__": "__main__"})
        reply = {"ok": True, "stdout": printed.getvalue()}
    except BaseException:
        reply = {"ok": False, "stdout": printed.getvalue(), "error": traceback.format_exc()}
    sys.__stdout__.write(json.dumps(reply) + "\n")
    sys.__stdout__.flush()
"""


@pytest.fixture(scope="session")
def open_instruct_probe():
    """probe(code, *args) -> what `python -c code args` prints, run by open-instruct's environment at the pinned
    tag (this repository importable beside it); skips where that checkout or environment is absent. One process per
    pytest-xdist worker serves every probe it runs."""
    from sft_vs_rlvr.errors import UserError
    from sft_vs_rlvr.launch import open_instruct

    try:
        open_instruct.check()
    except UserError as error:
        pytest.skip(f"open-instruct is not available here: {error}")
    server = subprocess.Popen([str(open_instruct.python()), "-c", _PROBE_SERVER], cwd=REPO,
                              env=open_instruct.environment(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)

    def probe(code: str, *args: str) -> str:
        server.stdin.write(json.dumps({"code": code, "args": list(args)}) + "\n")
        server.stdin.flush()
        line = server.stdout.readline()
        assert line, f"the probe process exited with status {server.poll()}"
        reply = json.loads(line)
        assert reply["ok"], reply["stdout"][-2000:] + reply["error"][-3000:]
        return reply["stdout"]

    yield probe
    server.stdin.close()
    server.wait(timeout=60)


@pytest.fixture
def config_dir(tmp_path) -> Path:
    """A private copy of configs/ that a test may edit."""
    target = tmp_path / "configs"
    shutil.copytree(REPO / "configs", target)
    return target


@pytest.fixture
def isolated_env(tmp_path, monkeypatch):
    """Output root and model cache inside tmp_path; no experiment id or W&B state from the caller."""
    monkeypatch.setenv("OUTPUT_ROOT", str(tmp_path / "runs"))
    monkeypatch.setenv("SFT_VS_RLVR_CACHE", str(tmp_path / "cache"))
    for name in ("EXPERIMENT_ID", "CONFIG_DIR", "WANDB_MODE", "FRESH", "PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def pasted_argv(text: str) -> list[str]:
    """The argument list bash builds when `text` (a --dry-run command, one flag per line) is pasted into it.

    The first word is replaced by a function that prints its arguments, so nothing is run.
    """
    result = subprocess.run(["bash", "-c", 'show() { printf "%s\\0" "$@"; }; show ' + text], capture_output=True,
                            text=True, check=True)
    return result.stdout.split("\0")[:-1]


# The tiny profile with fewer rows, for tests that run whole stages (the demo runs the full tiny settings):
# 64 training problems are 12 SFT steps and 4 RL steps, 40 test problems keep every report section populated.
TEST_ROWS = {"train_size": 64, "test_size": 40}
# Snapshots per arm: the fewest that still draw a curve (each is one more greedy evaluation).
TEST_CHECKPOINTS = 2
# A pilot of 16 prompts: half the tiny settings' (the RL groups are the tiny settings' own 4).
TEST_RL = {"pilot_prompts": 16}


def set_setting(path: Path, section: str, key: str, value: str) -> None:
    """Rewrite `key = ...` inside [section] of a TOML settings file, its comments kept; exactly one such line."""
    text = path.read_text()
    start = text.index(f"[{section}]\n")
    end = text.find("\n[", start)
    end = len(text) if end == -1 else end + 1
    body, count = re.subn(rf"(?m)^{re.escape(key)} = .*$", f"{key} = {value}", text[start:end])
    assert count == 1, f"{key} in [{section}] of {path.name}"
    path.write_text(text[:start] + body + text[end:])


def reduced_configs(root: Path, extra_evaluations: bool = True) -> Path:
    """configs/ with the tiny profile's row counts cut to TEST_ROWS, TEST_CHECKPOINTS snapshots per arm, TEST_RL
    and the reference protocol on 2 problems; without extra_evaluations, no reference protocol and no
    out-of-distribution set at all."""
    target = root / "configs"
    if not target.is_dir():
        shutil.copytree(REPO / "configs", target)
        for key, value in TEST_ROWS.items():
            set_setting(target / "experiment.toml", "profile.tiny", key, str(value))
        for arm in ("sft", "rlvr"):
            set_setting(target / f"{arm}.toml", "tiny", "checkpoints", str(TEST_CHECKPOINTS))
        for key, value in TEST_RL.items():
            set_setting(target / "rlvr.toml", "tiny", key, str(value))
        set_setting(target / "eval.toml", "tiny", "reference_limit", "2")
        if not extra_evaluations:
            set_setting(target / "eval.toml", "tiny", "reference", "false")
            set_setting(target / "eval.toml", "tiny", "ood_sets", "[]")
    return target

"""Shared fixtures. Tests that read the real GSM8K rows in ../shared skip where that folder is absent."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_GSM8K = REPO.parent / "shared" / "data" / "gsm8k"


@pytest.fixture
def gsm8k_dir() -> Path:
    if not (SHARED_GSM8K / "train.jsonl").is_file():
        pytest.skip(f"real GSM8K rows not present at {SHARED_GSM8K} (only in the project's own workspace)")
    return SHARED_GSM8K


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


# The tiny profile with fewer rows, for tests that run whole stages (the demo runs the full tiny settings).
TEST_ROWS = {"train_size": 160, "test_size": 60}


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
    """configs/ with the tiny profile's row counts cut to TEST_ROWS and the reference protocol to 6 problems;
    without extra_evaluations, no reference protocol and no out-of-distribution set at all."""
    target = root / "configs"
    if not target.is_dir():
        shutil.copytree(REPO / "configs", target)
        for key, value in TEST_ROWS.items():
            set_setting(target / "experiment.toml", "profile.tiny", key, str(value))
        set_setting(target / "eval.toml", "tiny", "reference_limit", "6")
        if not extra_evaluations:
            set_setting(target / "eval.toml", "tiny", "reference", "false")
            set_setting(target / "eval.toml", "tiny", "ood_sets", "[]")
    return target

"""The pinned environment holds together (issue 12): on a GPU box with protobuf 7, wandb 0.23.1 failed to import,
and TRL with it even with W&B disabled. requirements.lock pins protobuf below 7; these tests fail when a pin
in the lock stops satisfying what an installed package asks for, or when the tracking stack does not import."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line.strip())
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_every_installed_package_admits_the_locked_versions_of_what_it_requires():
    pins = lock_pins()
    assert pins["protobuf"].split(".")[0] != "7"
    conflicts = []
    for dist in distributions():
        for raw in dist.requires or []:
            requirement = Requirement(raw)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            pinned = pins.get(canonicalize_name(requirement.name))
            if pinned and not requirement.specifier.contains(pinned, prereleases=True):
                conflicts.append(f"{dist.metadata['Name']} requires {raw}, the lock pins {pinned}")
    assert not conflicts, "\n".join(conflicts)


@pytest.mark.slow  # runs the report or a subprocess (3-5 s)
def test_wandb_and_trl_import_under_the_pinned_protobuf():
    env = {**os.environ, "WANDB_MODE": "disabled"}
    probe = "import google.protobuf, wandb, trl; print(google.protobuf.__version__)"
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == lock_pins()["protobuf"]

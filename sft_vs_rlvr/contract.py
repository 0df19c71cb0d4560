"""The names the experiment contract uses in many places, defined once.

Stages and arms, the file formats every stage writes and reads (docs/FORMATS.md) with their versions, the
command that produces each input (for "run X first" messages), and the pinned open-instruct release.
Standard library only and no import of this package, so set-up scripts, the launchers' helpers and the
modules that run inside open-instruct's environment can all read it.
"""

from __future__ import annotations

from typing import NamedTuple

# ---------------------------------------------------------------------------------------- models and arms

BASE = "base"
# Training stages, in the order a researcher runs them. sft_rlvr is the optional third arm: GRPO started
# from the SFT model (INIT_FROM=sft), everything else equal; reported when it was run, not missed otherwise.
ARMS = ("sft", "rlvr", "sft_rlvr")
OPTIONAL_ARMS = ("sft_rlvr",)
MODELS = (BASE, *ARMS)  # the order of every table

# ---------------------------------------------------------------------------------------- entry points

SFT_LAUNCHER = "./experiment_sft_llama8b.sh"
RLVR_LAUNCHER = "./experiment_rlvr_llama8b.sh"
EVALUATE = "./evaluate_comparison.sh"
ANALYZE = "python analyze_results.py"
# What produces each input of a later stage: the fix named when that input is missing.
HOW_TO_PRODUCE = {
    "sft": SFT_LAUNCHER,
    "rlvr": RLVR_LAUNCHER,
    "sft_rlvr": f"INIT_FROM=sft {RLVR_LAUNCHER}",
    "eval": EVALUATE,
    "report": ANALYZE,
    "weights": f"{ANALYZE} --weights",
}


# ---------------------------------------------------------------------------------------- file formats


class Format(NamedTuple):
    id: str          # the "format" field of the file
    version: int     # the version this code writes
    readable: tuple[int, ...]  # the versions this code reads


EXPERIMENT = Format("sft-vs-rlvr/experiment", 1, (1,))        # <experiment>/experiment.json
DATA = Format("sft-vs-rlvr/data", 1, (1,))                    # <experiment>/data/manifest.json
MANIFEST = Format("sft-vs-rlvr/manifest", 1, (1,))            # <experiment>/<stage>/manifest.json
EVAL_RESULTS = Format("sft-vs-rlvr/eval-results", 3, (1, 2, 3))  # eval/<model>_results.json
EVAL_INDEX = Format("sft-vs-rlvr/eval-index", 1, (1,))        # eval/index.json
REFERENCE_RESULTS = Format("sft-vs-rlvr/reference-results", 1, (1,))  # eval/<model>_reference_results.json
OOD_DATA = Format("sft-vs-rlvr/ood-data", 1, (1,))            # data/ood/<set>.manifest.json
REPORT = Format("sft-vs-rlvr/report", 3, (3,))                # report/report.json
PILOT = Format("sft-vs-rlvr/pilot", 1, (1,))                  # <rl stage>/pilot.json

# ---------------------------------------------------------------------------------------- open-instruct

OPEN_INSTRUCT_URL = "https://github.com/allenai/open-instruct.git"
OPEN_INSTRUCT_TAG = "v0.3.0"
OPEN_INSTRUCT_COMMIT = "26de99604002d6a7b25a2c5f2ee880e388a21dca"

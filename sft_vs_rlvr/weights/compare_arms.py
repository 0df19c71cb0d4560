"""The weight-level stage of the analysis: which model folders to compare, and where the result goes.

`python analyze_results.py --weights` compares every finished arm's final model (sft, rlvr, sft_rlvr)
with the base model through weight_diff.py and writes <experiment>/weights/weight_diff.json; the report
shows it (section "Where in the network each method learns") whenever that file exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sft_vs_rlvr import atomic, contract, runs
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.errors import UserError
from sft_vs_rlvr.tiny import model as tiny_model

RESULT = Path("weights") / "weight_diff.json"


def base_folder(settings: settings_mod.Settings) -> Path:
    """The base model as a local folder: the tiny model, a local path, or the Hub snapshot (downloaded once)."""
    shared = settings.shared
    if shared["base_model"] == tiny_model.TINY_MODEL_NAME:
        return tiny_model.ensure(shared["chat_template"], shared["instruction"])
    if Path(shared["base_model"]).is_dir():
        return Path(shared["base_model"])
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(shared["base_model"], allow_patterns=["*.json", "*.safetensors", "*.bin"]))
    except Exception as error:  # noqa: BLE001 - no token, no network, no access: all one fix
        raise UserError(f"cannot get the weights of {shared['base_model']} ({type(error).__name__}); run 'hf auth "
                        "login' (gated model) or download it first and set HF_HUB_OFFLINE=1") from None


def arm_folders(exp_dir: Path) -> dict[str, Path]:
    folders = {arm: runs.final_model_folder(exp_dir / arm) for arm in contract.ARMS}
    return {arm: folder for arm, folder in folders.items() if folder is not None}


def run(experiment_dir: str | Path, rank_sample: int | None = None) -> Path:
    exp_dir = Path(experiment_dir)
    owner = json.loads((exp_dir / "experiment.json").read_text())
    settings = settings_mod.load(owner["profile"])
    arms = arm_folders(exp_dir)
    if not arms:
        raise UserError(f"no finished arm in {exp_dir} to compare with the base; train one first")
    from sft_vs_rlvr.weights import (
        diff as weight_diff,  # torch: only when comparing, not when the report reads the result
    )

    result = weight_diff.compare(base_folder(settings), arms, rank_sample=rank_sample)
    return atomic.write_json(exp_dir / RESULT, result)


def load(exp_dir: Path) -> dict[str, Any] | None:
    path = exp_dir / RESULT
    return json.loads(path.read_text()) if path.is_file() else None

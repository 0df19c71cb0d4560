"""What identifies a model's weights, so an evaluation is redone exactly when the weights changed.

A local folder is identified by sha256 over its weight files (name and bytes); a Hub id stands for itself;
a training state that has no plain weights file (a DeepSpeed state) by its files' names and sizes, which is
cheap and changes whenever the state is rewritten. Shared by the evaluation driver and the reference protocol.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sft_vs_rlvr.errors import UserError

WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin")


def weight_files(folder: Path) -> list[Path]:
    """The plain weight files directly in `folder` (safetensors or PyTorch .bin shards), sorted."""
    return sorted(path for pattern in WEIGHT_GLOBS for path in Path(folder).glob(pattern))


def weights_fingerprint(model_path: str) -> str:
    """sha256 over the weight files of a local folder; a Hub id stands for itself."""
    folder = Path(model_path)
    if not folder.is_dir():
        return f"hub:{model_path}"
    files = weight_files(folder)
    if not files:
        raise UserError(f"{folder} has no weights (*.safetensors or pytorch_model*.bin); retrain or fix the path")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def state_fingerprint(folder: Path) -> str:
    """A training state without plain weights: its files' relative names and sizes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder)}\0{path.stat().st_size}\0".encode())
    return "state:" + digest.hexdigest()[:16]

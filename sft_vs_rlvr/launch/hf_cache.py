"""Make a local model folder loadable by a Hub-style id, through a Hugging Face hub cache.

open-instruct v0.3.0's finetune.py calls `snapshot_download(model_name_or_path)` before loading the model
(finetune.py:525-528), and huggingface_hub rejects any path with more than one "/" as a repo id; a one-slash
relative path is taken for a Hub repo. So finetune.py cannot start from a local folder. `register()` lays the
folder out as the hub cache does for a downloaded repo:

    <cache_dir>/models--local--<name>/refs/main                  the snapshot id
    <cache_dir>/models--local--<name>/snapshots/<40 hex>/...     one symlink per file of the folder

and returns "local/<name>". With HF_HUB_CACHE=<cache_dir> and HF_HUB_OFFLINE=1, snapshot_download,
AutoConfig, AutoTokenizer and AutoModel*.from_pretrained("local/<name>") all resolve to that snapshot.

Symlinks, not copies: nothing is duplicated (an 8B checkpoint is 16 GB), and the hub cache itself links
snapshots to blobs the same way. The source folder must therefore stay where it is; the project's model
folders are immutable (keyed by their recipe or run). The snapshot id is a hash of the folder's resolved path
and its files' names, sizes and modification times: registering the same folder again is a no-op, and a changed
folder gets a new snapshot that refs/main then names. Each snapshot is built in a temporary folder and renamed
into place, and refs/main is replaced atomically, so a reader never sees a half-made snapshot.
Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import tempfile
from pathlib import Path

from sft_vs_rlvr.errors import UserError, cli

NAMESPACE = "local"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")  # huggingface_hub's repo name rule, kept simple


def _files(folder: Path) -> list[Path]:
    """The folder's files, relative; not its .cache/ (huggingface_hub's download metadata)."""
    files = (p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
    return sorted(p for p in files if p.parts[0] != ".cache")


def snapshot_id(folder: Path) -> str:
    digest = hashlib.sha1(str(folder).encode())
    for relative in _files(folder):
        stat = (folder / relative).stat()
        digest.update(f"\0{relative}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def register(model_dir: str | Path, cache_dir: str | Path, name: str | None = None) -> str:
    """Register `model_dir` in the hub cache `cache_dir` (what HF_HUB_CACHE must name); return its id."""
    folder = Path(model_dir).resolve()
    if not (folder / "config.json").is_file():
        raise UserError(f"{model_dir} is not a model folder (no config.json)")
    name = name or folder.name
    if not _NAME.match(name) or "--" in name or ".." in name:
        raise UserError(f"{name!r} cannot be a Hub repo name; pass a name of letters, digits, '.', '_' or '-'")
    repo = Path(cache_dir) / f"models--{NAMESPACE}--{name}"
    revision = snapshot_id(folder)
    snapshot = repo / "snapshots" / revision
    if not snapshot.is_dir():
        (repo / "snapshots").mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{revision}-", dir=repo / "snapshots"))
        for relative in _files(folder):
            (building / relative).parent.mkdir(parents=True, exist_ok=True)
            (building / relative).symlink_to(folder / relative)
        try:
            building.rename(snapshot)
        except OSError:  # another process registered the same snapshot first
            for path in sorted(building.rglob("*"), reverse=True):
                path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
            building.rmdir()
    (repo / "refs").mkdir(exist_ok=True)
    ref = repo / "refs" / "main"
    if not ref.is_file() or ref.read_text() != revision:
        fd, temporary = tempfile.mkstemp(prefix=".main-", dir=repo / "refs")
        with os.fdopen(fd, "w") as handle:
            handle.write(revision)  # no newline, as huggingface_hub writes it
        os.replace(temporary, ref)
    return f"{NAMESPACE}/{name}"


@cli
def main(argv: list[str] | None = None) -> int:
    """`python -m sft_vs_rlvr.launch.hf_cache MODEL_DIR --cache-dir DIR [--name NAME]`: print the id to load it by."""
    parser = argparse.ArgumentParser(prog="python -m sft_vs_rlvr.launch.hf_cache", description=main.__doc__)
    parser.add_argument("model_dir")
    parser.add_argument("--cache-dir", required=True, help="the hub cache; set HF_HUB_CACHE to it when loading")
    parser.add_argument("--name", help="repo name under local/ (default: the folder's name)")
    args = parser.parse_args(argv)
    print(register(args.model_dir, args.cache_dir, args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Read W&B run histories: local run files directly, online runs through the public API.

A W&B run folder (`offline-run-<date>_<time>-<id>/`, or `run-<date>_<time>-<id>/` for an online run's
local copy) holds `run-<id>.wandb`: a leveldb-style log (32 KiB blocks, 7-byte record headers) of
`wandb.proto.wandb_internal_pb2.Record` protobufs. In offline mode that file is the only place the
history, config and summary live (no wandb-summary.json is written), and `wandb.Api()` needs a server,
so the report reads the file itself. Only the protobuf schema is taken from the wandb package; the
framing is decoded here because wandb's own reader (`wandb.sdk.internal.datastore`) is internal and
was removed in later releases.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

FILE_HEADER = struct.Struct("<4sHB")  # ident ":W&B", magic 0xBEE1, version 0
RECORD_HEADER = struct.Struct("<IHB")  # crc32, data length, chunk type
BLOCK_SIZE = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
# The stored checksum is crc32 over the chunk type byte followed by the data.
_TYPE_CRC = {t: zlib.crc32(bytes([t])) for t in (FULL, FIRST, MIDDLE, LAST)}


class MissingInput(Exception):
    """An input the report needs is absent; str(error) says what is missing and how to produce it."""


class CorruptRunFile(Exception):
    """A .wandb file whose framing or checksums are wrong (not merely cut short by a live writer)."""


@dataclass
class OfflineRun:
    run_id: str
    project: str
    group: str | None
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def offline_environment(wandb_dir: str | Path) -> Iterator[None]:
    """WANDB_MODE=offline with runs under wandb_dir, for writing real run files (tests, benchmarks); the
    previous environment is restored afterwards."""
    keys = ("WANDB_MODE", "WANDB_DIR", "WANDB_SILENT", "WANDB_DISABLE_GIT", "WANDB_DISABLE_CODE")
    saved = {key: os.environ.get(key) for key in keys}
    os.environ.update(WANDB_MODE="offline", WANDB_DIR=str(wandb_dir), WANDB_SILENT="true", WANDB_DISABLE_GIT="true",
                      WANDB_DISABLE_CODE="true")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def iter_records(path: str | Path) -> Iterator[bytes]:
    """Yield each complete record payload of a .wandb file, reassembling chunks split across blocks.

    A record cut short at the end of the file (a run still being written, or killed) is skipped;
    a bad checksum or a chunk sequence that cannot happen raises CorruptRunFile.
    """
    path = Path(path)
    buf = path.read_bytes()
    if len(buf) < FILE_HEADER.size:
        raise CorruptRunFile(f"{path}: shorter than the W&B file header")
    ident, magic, version = FILE_HEADER.unpack_from(buf, 0)
    if ident != b":W&B" or magic != 0xBEE1 or version != 0:
        raise CorruptRunFile(f"{path}: not a W&B run file (header {ident!r}, {magic:#x}, v{version})")
    pos, pending = FILE_HEADER.size, None
    while pos + RECORD_HEADER.size <= len(buf):
        left_in_block = BLOCK_SIZE - pos % BLOCK_SIZE
        if left_in_block < RECORD_HEADER.size:  # block trailer: zero padding
            pos += left_in_block
            continue
        crc, length, chunk_type = RECORD_HEADER.unpack_from(buf, pos)
        if chunk_type == 0 and length == 0:  # zero fill after the last record of a block
            pos += left_in_block
            continue
        start, end = pos + RECORD_HEADER.size, pos + RECORD_HEADER.size + length
        if end > len(buf):
            return  # partial trailing record
        data = buf[start:end]
        if chunk_type not in _TYPE_CRC or zlib.crc32(data, _TYPE_CRC[chunk_type]) != crc:
            raise CorruptRunFile(f"{path}: bad record at byte {pos} (type {chunk_type}, checksum mismatch)")
        pos = end
        if chunk_type == FULL and pending is None:
            yield data
        elif chunk_type == FIRST and pending is None:
            pending = data
        elif chunk_type in (MIDDLE, LAST) and pending is not None:
            pending += data
            if chunk_type == LAST:
                yield pending
                pending = None
        else:
            raise CorruptRunFile(f"{path}: unexpected chunk type {chunk_type} at byte {pos - length}")


def _item_key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def _item_path(item: Any) -> list[str]:
    return [item.key] if item.key else list(item.nested_key)


def _apply_update(target: dict[str, Any], record: Any) -> None:
    """Apply a ConfigRecord/SummaryRecord (nested-key updates, then removals) to a nested dict."""
    for item in record.update:
        *parents, leaf = _item_path(item)
        node = target
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = json.loads(item.value_json)
    for item in record.remove:
        *parents, leaf = _item_path(item)
        node = target
        for name in parents:
            node = node.get(name, {})
        node.pop(leaf, None)


def read_offline_run(run_dir: str | Path, with_summary: bool = True) -> OfflineRun:
    """Read identity, config, summary and every history row of one local W&B run folder. with_summary=False
    leaves the summary empty: the report reads none of it, and wandb writes a summary record after nearly
    every history row (a fifth of the reading time of a 10,000-row run)."""
    from wandb.proto import wandb_internal_pb2  # lazy: wandb is slow to import

    run_file = _run_file(Path(run_dir))
    run = OfflineRun(run_id="", project="", group=None)
    # wandb 0.23 writes a summary record after nearly every history row; only the last value of each key
    # matters, so summary updates keep their JSON text and are decoded once at the end (half the reading time
    # of a 10,000-row run otherwise).
    summary: dict[tuple[str, ...], str | None] = {}
    quoted: dict[str, str] = {}
    for payload in iter_records(run_file):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            run.history.append(_history_row(record.history.item, quoted))
        elif kind == "run":
            run.run_id, run.project = record.run.run_id, record.run.project
            run.group = record.run.run_group or None
            _apply_update(run.config, record.run.config)
            if with_summary:
                _collect_summary(summary, record.run.summary)
        elif kind == "config":
            _apply_update(run.config, record.config)
        elif kind == "summary" and with_summary:
            _collect_summary(summary, record.summary)
    for path, value in summary.items():
        node = run.summary
        for name in path[:-1]:
            node = node.setdefault(name, {})
        if value is None:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = json.loads(value)
    return run


def _history_row(items: Any, quoted: dict[str, str]) -> dict[str, Any]:
    """One history row, decoded with one json.loads: the items' JSON texts joined into one object (a third of
    the time of decoding each value alone, on rows of 40 keys). quoted caches each key's JSON string."""
    parts = []
    for item in items:
        key = item.key or "/".join(item.nested_key)  # _item_key, inlined: this loop runs for every cell
        name = quoted.get(key)
        if name is None:
            name = quoted[key] = json.dumps(key)
        parts.append(f"{name}:{item.value_json}")
    return json.loads("{" + ",".join(parts) + "}")


def _collect_summary(summary: dict[tuple[str, ...], str | None], record: Any) -> None:
    """Latest JSON text (None: removed) of each summary key; a key set again moves to the end, so the
    decoding order replays the updates' order."""
    for items, removed in ((record.update, False), (record.remove, True)):
        for item in items:
            key = item.key  # _item_path, inlined: wandb writes a summary record after nearly every row
            path = (key,) if key else tuple(item.nested_key)
            summary.pop(path, None)
            summary[path] = None if removed else item.value_json


def read_offline_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """History rows of a local run folder, in logging order, keys like "train/loss"."""
    return read_offline_run(run_dir).history


def _run_file(run_dir: Path) -> Path:
    files = sorted(run_dir.glob("run-*.wandb"))
    if len(files) != 1:
        found = ", ".join(f.name for f in files) or "none"
        raise MissingInput(f"{run_dir}: expected one run-<id>.wandb file, found {found}")
    return files[0]


def find_offline_run(wandb_dir: str | Path, run_id: str | None = None, prefix: str = "offline-run-") -> Path:
    """Locate a run folder under a stage's wandb/ folder.

    W&B puts its folders in `$WANDB_DIR/wandb/`, so a stage that sets WANDB_DIR to `<stage>/wandb`
    gets `<stage>/wandb/wandb/offline-run-*`; both depths are searched. An online run's local copy
    has the same file format and is found with prefix="run-".

    accelerate 1.12 (open-instruct's finetune.py) finishes its first offline run at once and starts a
    second with the same id, which W&B names `<id>-1`; the folder `latest-run` points to (the one with
    the history) wins, else the one with the largest run file.
    """
    wandb_dir = Path(wandb_dir)
    same_id = re.compile(rf"-{re.escape(run_id)}(-\d+)?$") if run_id else None
    candidates = sorted(
        path
        for parent in (wandb_dir, wandb_dir / "wandb")
        for path in parent.glob(f"{prefix}*")
        if path.is_dir() and not path.is_symlink() and (same_id is None or same_id.search(path.name))
    )
    wanted = f"{prefix}*" + (f"-{run_id}" if run_id else "")
    if not candidates:
        raise MissingInput(f"no W&B run folder {wanted} under {wandb_dir}")
    if len(candidates) > 1 and run_id:
        latest = [p for p in candidates if (p.parent / "latest-run").resolve() == p.resolve()]
        return latest[0] if latest else max(candidates, key=_run_file_size)
    if len(candidates) > 1:
        names = ", ".join(str(path.relative_to(wandb_dir)) for path in candidates)
        raise MissingInput(f"several W&B run folders {wanted} under {wandb_dir} ({names}); name the run id")
    return candidates[0]


def _run_file_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.glob("*.wandb"))


def read_online_run(entity_project: str, run_id: str) -> OfflineRun:
    """Identity and every history row of a run on a W&B server (needs network and an API key)."""
    import wandb

    api_run = wandb.Api().run(f"{entity_project}/{run_id}")
    return OfflineRun(run_id=api_run.id, project=api_run.project, group=api_run.group or None,
                      config=dict(api_run.config), summary=dict(api_run.summary), history=list(api_run.scan_history()))


def _online_path(info: dict[str, Any]) -> str:
    """entity/project from the run URL (https://wandb.ai/<entity>/<project>/runs/<id>), else from the manifest's
    entity (or WANDB_ENTITY) and project; the project alone means the API key's default entity."""
    url = info.get("url") or ""
    parts = url.split("/runs/")[0].rstrip("/").split("/")
    if "/runs/" in url and len(parts) >= 2:
        return "/".join(parts[-2:])
    entity = info.get("entity") or os.environ.get("WANDB_ENTITY")
    return f"{entity}/{info['project']}" if entity and entity != "offline" else info["project"]


def run_for_manifest(stage_dir: str | Path, manifest: dict[str, Any]) -> tuple[OfflineRun, str]:
    """The W&B run a stage manifest names (its summary left out of a local file), and where it was read (a run
    file, or the W&B API path).

    Offline runs are read from the stage's wandb/ folder. Online runs also leave a local copy
    (`run-<date>_<time>-<id>/`) in the same format, which is preferred over the API so the report
    works without network or key.
    """
    stage_dir = Path(stage_dir)
    info = manifest.get("wandb") or {}
    mode, run_id = info.get("mode"), info.get("run_id")
    if mode not in ("offline", "online"):
        raise MissingInput(f"{stage_dir.name}: W&B mode is {mode!r} in the manifest, so no run was recorded")
    wandb_dirs = [stage_dir / "wandb"]
    if info.get("dir"):
        wandb_dirs.append(stage_dir / info["dir"])  # an absolute dir replaces stage_dir here
    prefix = "offline-run-" if mode == "offline" else "run-"
    errors = []
    for wandb_dir in dict.fromkeys(wandb_dirs):
        try:
            folder = find_offline_run(wandb_dir, run_id, prefix)
        except MissingInput as error:
            errors.append(str(error))
            continue
        return read_offline_run(folder, with_summary=False), str(_run_file(folder))
    if mode == "online" and run_id:
        path = _online_path(info)
        try:
            return read_online_run(path, run_id), f"W&B run {path}/{run_id}"
        except Exception as error:  # wandb raises many unrelated types (no key, no network, no run)
            errors.append(f"W&B API: {type(error).__name__}: {error}")
    raise MissingInput("; ".join(errors))


def history_for_manifest(stage_dir: str | Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """History rows of the W&B run a stage manifest names (run_for_manifest)."""
    return run_for_manifest(stage_dir, manifest)[0].history


def series(history: list[dict[str, Any]], key: str, step_key: str) -> list[list[float]]:
    """[[step, value], ...] of the rows that carry a finite number for both key and step_key."""
    points = []
    for row in history:
        value = row.get(key)
        if value is None:  # most rows lack a sparse key (the in-loop evaluation's): skip them cheaply
            continue
        step = row.get(step_key)
        if _is_number(step) and _is_number(value):
            points.append([step, value])
    return points


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def curve(points: list[list[float]], key: str, step_key: str, **extra: Any) -> dict[str, Any]:
    """A curve as the report stores it: the points and their first, last, min and max, plus any notes."""
    values = [value for _, value in points]
    return {"key": key, "step_key": step_key, "points": points, "n_points": len(points), "first": points[0],
            "last": points[-1], "min": min(values), "max": max(values), **extra}


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool): what a history cell must hold to be plotted."""
    return _is_number(value)

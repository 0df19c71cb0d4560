"""Section 9, reproducibility: what a reader needs to rerun or audit a stage, copied from its manifest."""

from __future__ import annotations

import json
from typing import Any


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested dict -> {"a.b": "text"}: the data and host blocks have no fixed schema here."""
    if isinstance(value, dict):
        flat: dict[str, str] = {}
        for key in sorted(value):
            flat.update(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value if isinstance(value, str) else json.dumps(value, sort_keys=True)}


MANIFEST_FIELDS = ("experiment_id", "profile", "status", "exit_status", "started_at", "ended_at", "repo_commit",
                   "repo_dirty", "open_instruct_commit", "command_line")
WANDB_FIELDS = ("mode", "project", "group", "run_id", "run_name", "url", "sync_command")


def reproducibility(manifest: dict[str, Any], stage: str) -> dict[str, Any]:
    """What a reader needs to rerun or audit a stage, copied from its manifest."""
    info = manifest.get("wandb") or {}
    return {
        "manifest_file": f"{stage}/manifest.json",
        **{key: manifest.get(key) for key in MANIFEST_FIELDS},
        "settings_fingerprints": manifest.get("settings_fingerprints") or {},
        "settings": _flatten(manifest.get("settings") or {}),
        "packages": {name: str(version) for name, version in sorted((manifest.get("packages") or {}).items())},
        "data": _flatten(manifest.get("data") or {}),
        "host": _flatten(manifest.get("host") or {}),
        "wandb": {key: info.get(key) for key in WANDB_FIELDS},
    }

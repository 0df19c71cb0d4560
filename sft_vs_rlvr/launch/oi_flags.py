"""Check an open-instruct command line against the flag manifest of the pinned revision.

configs/open_instruct_flags/<entrypoint>_v0.3.0.json lists every flag of finetune.py and
grpo_fast.py at v0.3.0 with its type and default. It is produced from an open-instruct checkout by
scripts/extract_open_instruct_flags.py (static reading of the argument dataclasses) and committed as
data, so a renamed, removed or mistyped flag is caught on any machine, before any GPU time.
This is stricter than open-instruct's own parser on purpose: abbreviations are refused (argparse
would accept a unique prefix, which breaks silently when a new flag shares it).
"""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from pathlib import Path

from sft_vs_rlvr import contract
from sft_vs_rlvr.settings import REPO_ROOT

FLAGS_DIR = REPO_ROOT / "configs" / "open_instruct_flags"
ENTRYPOINTS = {"finetune.py": "finetune", "grpo_fast.py": "grpo_fast"}
_BOOL_WORDS = {"true", "false", "yes", "no", "1", "0", "t", "f", "y", "n"}


@lru_cache(maxsize=None)
def manifest(entrypoint: str) -> dict[str, dict]:
    """name -> flag record (also under each --no_<name> alias)."""
    document = json.loads((FLAGS_DIR / f"{entrypoint}_{contract.OPEN_INSTRUCT_TAG}.json").read_text())
    flags = {}
    for flag in document["flags"]:
        flags[flag["flag"]] = flag
        for alias in flag.get("also_accepts") or []:
            flags[alias] = {**flag, "negated": True}
    return flags


def _kind(type_text: str) -> str:
    text = type_text.replace(" ", "")
    if "list[" in text or "List[" in text:
        return "list"
    if text in ("bool", "bool|None", "Optional[bool]"):
        return "bool"
    if text.startswith(("int", "Optional[int]")) and "str" not in text:
        return "int"
    if text.startswith(("float", "Optional[float]")) and "str" not in text:
        return "float"
    return "other"


def check(entrypoint: str, arguments: list[str]) -> list[str]:
    """Problems with `arguments` (the part after the script path); empty when the manifest accepts them."""
    flags = manifest(entrypoint)
    problems: list[str] = []
    seen: set[str] = set()
    index = 0
    if arguments and not arguments[0].startswith("--"):
        problems.append(f"{entrypoint}: stray value {arguments[0]!r} before the first flag")
    while index < len(arguments):
        token = arguments[index]
        index += 1
        if not token.startswith("--"):
            continue
        values = []
        while index < len(arguments) and not arguments[index].startswith("--"):
            values.append(arguments[index])
            index += 1
        record = flags.get(token)
        if record is None:
            close = difflib.get_close_matches(token, list(flags), n=1)
            problems.append(f"{entrypoint}: unknown flag {token} at open-instruct {contract.OPEN_INSTRUCT_TAG}"
                            + (f" (did you mean {close[0]}?)" if close else ""))
            continue
        if record["name"] in seen:
            problems.append(f"{entrypoint}: {token} given twice")
        seen.add(record["name"])
        kind = _kind(record["type"])
        if record.get("negated") and values:
            problems.append(f"{entrypoint}: {token} takes no value")
        elif kind == "bool":
            if len(values) > 1 or (values and values[0].lower() not in _BOOL_WORDS):
                problems.append(f"{entrypoint}: {token} takes at most one true/false value, got {values}")
        elif kind == "list":
            if not values:
                problems.append(f"{entrypoint}: {token} needs at least one value")
        elif len(values) != 1:
            problems.append(f"{entrypoint}: {token} takes exactly one value, got {values}")
        else:
            problems.extend(_check_value(entrypoint, token, kind, record, values[0]))
    for name, record in flags.items():
        if record.get("required") and not record.get("negated") and record["name"] not in seen:
            problems.append(f"{entrypoint}: required flag {name} is missing")
    return problems


def _check_value(entrypoint: str, token: str, kind: str, record: dict, value: str) -> list[str]:
    try:
        if kind == "int":
            int(value)
        elif kind == "float":
            float(value)
    except ValueError:
        return [f"{entrypoint}: {token} needs a {kind}, got {value!r}"]
    choices = record.get("choices")
    if choices and value not in [str(c) for c in choices]:
        return [f"{entrypoint}: {token} must be one of {choices}, got {value!r}"]
    return []


def split_command(command: list[str]) -> tuple[str, list[str]]:
    """(entrypoint, its arguments) from a full launcher command (accelerate launch ... or python ...)."""
    for position, token in enumerate(command):
        name = Path(token).name
        if name in ENTRYPOINTS:
            return ENTRYPOINTS[name], command[position + 1:]
    raise ValueError(f"no open-instruct entrypoint in {command[:4]}...")

"""Out-of-distribution test sets: GSM8K-like problems the arms never trained on, same prompting and grading.

Each set is loaded through `datasets` from the Hub (ids, sizes and licences: anchors.md section 4), or,
where OOD_DATA_DIR is set, from <OOD_DATA_DIR>/<name>.jsonl holding rows in the Hub dataset's own schema
(offline machines, tests). Rows become the prepared test format (data_prep.py): the question with the
shared instruction, the numeric answer as ground truth; rows whose answer is not a number are left out and
counted. Off by default: the `ood_sets` setting of configs/eval.toml names the sets to run.

Field mappings are written from the dataset cards and have not been checked against the Hub here (no
Hub access on the development machines): a missing field stops with a message naming it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

from . import atomic, data_prep, grading, prompts
from .errors import UserError

OOD_FORMAT = "sft-vs-rlvr/ood-data"


def number_text(value: Any) -> str | None:
    """A ground truth both graders accept: an integer, or a plain decimal; None when not a number."""
    parsed = grading.parse_number(str(value)) if value is not None else None
    if parsed is None:
        return None
    if parsed.denominator == 1:
        return str(parsed.numerator)
    text = f"{float(parsed):.10f}".rstrip("0").rstrip(".")
    return text if Fraction(text) == parsed else None  # a repeating fraction has no exact decimal label


@dataclass(frozen=True)
class OODSet:
    hub_id: str
    config: str | None
    split: str
    question: Callable[[dict[str, Any]], str]
    answer: Callable[[dict[str, Any]], str | None]
    licence: str


REGISTRY: dict[str, OODSet] = {
    "gsm8k-platinum": OODSet("madrylab/gsm8k-platinum", "main", "test", lambda r: r["question"],
                             lambda r: number_text(data_prep.gsm8k_gold_answer(r["answer"])), "MIT"),
    "gsm-hard": OODSet("reasoning-machines/gsm-hard", None, "train", lambda r: r["input"],
                       lambda r: number_text(r["target"]), "MIT"),
    "svamp": OODSet("ChilleD/SVAMP", None, "test",
                    lambda r: r.get("question_concat") or f"{r['Body'].strip()} {r['Question'].strip()}",
                    lambda r: number_text(r["Answer"]), "MIT"),
    "gsm-plus": OODSet("qintongli/GSM-Plus", None, "test", lambda r: r["question"],
                       lambda r: number_text(r["answer"]), "CC-BY-SA-4.0"),
}
UNSUPPORTED = {"math-500": "its answers are LaTeX expressions and both graders score numbers only"}


def check_names(names: list[str]) -> None:
    for name in names:
        if name in UNSUPPORTED:
            raise UserError(f"ood set '{name}' is not supported yet: {UNSUPPORTED[name]}; remove it from ood_sets "
                            "in configs/eval.toml")
        if name not in REGISTRY:
            raise UserError(f"unknown ood set '{name}' in configs/eval.toml; choose from {', '.join(REGISTRY)}")


def _source_rows(name: str) -> tuple[list[dict[str, Any]], str]:
    spec = REGISTRY[name]
    local = os.environ.get("OOD_DATA_DIR")
    if local:
        path = Path(local) / f"{name}.jsonl"
        if not path.is_file():
            raise UserError(f"OOD_DATA_DIR is set but {path} is missing; add it or unset OOD_DATA_DIR")
        return atomic.read_jsonl(path), str(path)
    from datasets import load_dataset

    data = load_dataset(spec.hub_id, spec.config, split=spec.split) if spec.config else \
        load_dataset(spec.hub_id, split=spec.split)
    return [dict(row) for row in data], f"{spec.hub_id} ({spec.split})"


def prepare(name: str, shared: dict[str, Any], out_dir: Path) -> Path:
    """<out_dir>/<name>.jsonl in the prepared test format, written once (a manifest beside it says from what)."""
    check_names([name])
    path, manifest_path = out_dir / f"{name}.jsonl", out_dir / f"{name}.manifest.json"
    if path.is_file() and manifest_path.is_file():
        return path
    spec = REGISTRY[name]
    rows, source = _source_rows(name)
    prepared, dropped = [], 0
    for number, row in enumerate(rows):
        try:
            question, answer = spec.question(row), spec.answer(row)
        except KeyError as missing:
            raise UserError(f"{source}: row {number} has no field {missing}; the dataset's schema is not the one "
                            f"sft_vs_rlvr/ood.py expects for '{name}'") from None
        except UserError:
            answer = None  # a GSM8K-style solution without a '####' line
        if answer is None:
            dropped += 1
            continue
        prepared.append({"id": f"{name}-{number:05d}", "dataset": "gsm8k", "ground_truth": answer,
                         "messages": [{"role": "user", "content": prompts.user_content(question, shared["instruction"])}]})
    if not prepared:
        raise UserError(f"{source}: no row of '{name}' has a numeric answer; check the data")
    atomic.write_jsonl(path, prepared)
    atomic.write_json(manifest_path, {"format": OOD_FORMAT, "version": 1, "name": name, "source": source,
                                      "licence": spec.licence, "rows": len(prepared),
                                      "dropped_non_numeric": dropped, "instruction": shared["instruction"]})
    return path


def manifest(out_dir: Path, name: str) -> dict[str, Any]:
    return json.loads((out_dir / f"{name}.manifest.json").read_text())

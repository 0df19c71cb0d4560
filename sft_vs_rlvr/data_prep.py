"""Data preparation: one source of rows, three files both arms and the evaluator read.

Sources (the `dataset` setting):
  synthetic-gsm8k   generated offline (synth_gsm8k.py), the tiny profile
  openai/gsm8k      the Hub dataset (config "main"), loaded with `datasets`
  <folder>          a local folder with GSM8K-format train.jsonl and test.jsonl ({"question", "answer"})

Every source is first turned into ai2-adapt-dev/rlvr_gsm8k_zs's row format (messages = [user
question, assistant gold solution], ground_truth, dataset), then written as:
  sft_train.jsonl  SFT targets: the gold solutions of the training questions (end in "#### N")
  rl_train.jsonl   RL prompts: the same training questions, with ground_truth for the verifier
  test.jsonl       the test split only (never a training row), for evaluation
The user turn is `question + "\\n\\n" + instruction` in all three, so no arm sees another prompt.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

from sft_vs_rlvr import atomic, contract, prompts
from sft_vs_rlvr.errors import UserError
from sft_vs_rlvr.tiny import synth_gsm8k

FILES = ("sft_train.jsonl", "rl_train.jsonl", "test.jsonl")


def gsm8k_gold_answer(solution: str) -> str:
    """The number after GSM8K's '####', commas removed ('1,000' -> '1000')."""
    if "####" not in solution:
        raise UserError(f"GSM8K solution without a '####' answer line: {solution[:60]!r}; check the data source")
    return solution.split("####")[-1].strip().replace(",", "")


def gsm8k_row(row_id: str, question: str, solution: str) -> dict[str, Any]:
    return {
        "id": row_id,
        "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": solution}],
        "ground_truth": gsm8k_gold_answer(solution),
        "dataset": "gsm8k",
    }


def _hub_rows(name: str, split: str) -> list[dict[str, Any]]:
    from datasets import load_dataset  # imported here: the tiny profile never needs it

    data = load_dataset(name, "main", split=split)
    return [gsm8k_row(f"gsm8k-{split}-{i:05d}", r["question"], r["answer"]) for i, r in enumerate(data)]


def _folder_rows(folder: Path, split: str) -> list[dict[str, Any]]:
    path = folder / f"{split}.jsonl"
    if not path.is_file():
        raise UserError(f"dataset folder {folder} has no {split}.jsonl; it needs GSM8K-format train.jsonl and test.jsonl")
    return [gsm8k_row(f"gsm8k-{split}-{i:05d}", r["question"], r["answer"]) for i, r in enumerate(atomic.read_jsonl(path))]


def source_rows(dataset: str, split: str, size: int) -> list[dict[str, Any]]:
    """Rows of one split in rlvr_gsm8k_zs format; `size` caps real data and sets generated data's size.

    Generated data uses a fixed seed, so every seed of an experiment trains and is tested on the same rows,
    as with GSM8K itself: the experiment's seed governs training and sampling, not the data."""
    if dataset == "synthetic-gsm8k":
        return list(synth_gsm8k.as_rows(synth_gsm8k.generate(split, size, synth_gsm8k.DATA_SEED), split))
    folder = Path(dataset)
    rows = _folder_rows(folder, split) if folder.is_dir() else _hub_rows(dataset, split)
    if size > len(rows):
        raise UserError(f"{dataset} {split} has {len(rows)} rows but {size} were asked for; lower the size setting")
    return rows[:size]


def _user_message(row: dict[str, Any], instruction: str) -> dict[str, str]:
    question = row["messages"][0]["content"]
    return {"role": "user", "content": prompts.user_content(question, instruction)}


def build(shared: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The three prepared files' rows, from the shared settings alone."""
    train = source_rows(shared["dataset"], "train", shared["train_size"])
    test = source_rows(shared["dataset"], "test", shared["test_size"])
    overlap = {r["messages"][0]["content"] for r in train} & {r["messages"][0]["content"] for r in test}
    if overlap:
        raise UserError(f"{len(overlap)} test questions also appear in train; the data source is not a clean split")
    instruction = shared["instruction"]
    sft = [{"id": r["id"], "messages": [_user_message(r, instruction), r["messages"][1]]} for r in train]
    rl = [{"id": r["id"], "messages": [_user_message(r, instruction)], "ground_truth": r["ground_truth"],
           "dataset": r["dataset"]} for r in train]
    test_rows = [{"id": r["id"], "messages": [_user_message(r, instruction)], "ground_truth": r["ground_truth"],
                  "dataset": r["dataset"], "solution": r["messages"][1]["content"]} for r in test]
    return {"sft_train.jsonl": sft, "rl_train.jsonl": rl, "test.jsonl": test_rows}


def _sha256_rows(rows: Iterable[dict[str, Any]]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update((json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n").encode())
    return digest.hexdigest()


def prepare(shared: dict[str, Any], out_dir: Path, log=print) -> dict[str, Any]:
    """Write the prepared files once; a second call checks them and reuses them.

    Files that exist but differ from what the settings produce are never overwritten: that
    folder belongs to another experiment.
    """
    out_dir = Path(out_dir)
    manifest_path = out_dir / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("source") != _source_description(shared):
            raise UserError(
                f"{out_dir} holds data prepared from other settings ({manifest.get('source')}); "
                "use a new experiment (--fresh) instead of changing the data of this one")
        for name in FILES:
            if _sha256_rows(atomic.read_jsonl(out_dir / name)) != manifest["files"][name]["sha256"]:
                raise UserError(f"{out_dir / name} was modified after preparation; restore it or start --fresh")
        log(f"data: reusing {out_dir} (fingerprint {manifest['fingerprint']})")
        return manifest
    rows = build(shared)
    files = {}
    for name in FILES:
        atomic.write_jsonl(out_dir / name, rows[name])
        files[name] = {"rows": len(rows[name]), "sha256": _sha256_rows(rows[name])}
    manifest = {
        "format": contract.DATA.id, "version": contract.DATA.version,
        "source": _source_description(shared),
        "files": files,
        "fingerprint": hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16],
    }
    atomic.write_json(manifest_path, manifest)
    log(f"data: prepared {files['sft_train.jsonl']['rows']} train and {files['test.jsonl']['rows']} test rows "
        f"in {out_dir} (fingerprint {manifest['fingerprint']})")
    return manifest


def _source_description(shared: dict[str, Any]) -> dict[str, Any]:
    keys = ("dataset", "train_size", "test_size", "seed", "instruction")
    description = {k: shared[k] for k in keys}
    if shared["dataset"] == "synthetic-gsm8k":
        description.update(seed=synth_gsm8k.DATA_SEED, generator_version=synth_gsm8k.GENERATOR_VERSION)
    else:
        description.pop("seed")  # GSM8K's rows do not depend on a seed
    return description

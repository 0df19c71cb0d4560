"""One model's generations in one process: load the engine once, run every decoding over this replica's share
of the problems, append the completions to its own partial files, and exit, which frees the GPU.

The evaluation driver (driver.py) starts one worker per replica for each model on a GPU machine (data parallel:
one replica per visible GPU, or one tensor-parallel worker for a model that does not fit a card), and runs
the same code in its own process on a CPU. Replica i of n takes every n-th problem of the length-sorted order,
so every replica gets short and long prompts alike; the driver merges the partial files by problem index.

Partial files (eval/.partial/<label>.<decoding>.w<i>of<n>.jsonl): a header line {"key": ...} naming the
weights, decoding and settings, then one {"index", "completions"} line per problem, written a batch at a time.
A killed run resumes from every complete line of every partial file whose key matches, whatever the replica
count; a file of another key (other weights or settings) is kept aside as .stale-<time>, never deleted.

Job file (JSON, written by the driver): model_path, engine, batch_size, seed, max_new_tokens,
tensor_parallel_size, prompt_ids (list of lists), decodings ([Decoding fields]), keys ({kind: key}),
partial_prefix (eval/.partial/<label>), shard [i, n], timing_file.

Usage: python -m sft_vs_rlvr.evaluate.worker JOB.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from sft_vs_rlvr import atomic
from sft_vs_rlvr.errors import cli
from sft_vs_rlvr.evaluate import engines


def _json_or_none(line: str) -> Any:
    try:
        return json.loads(line) if line.strip() else None
    except json.JSONDecodeError:
        return None


def partial_path(prefix: Path, kind: str, shard: int, shards: int) -> Path:
    return prefix.parent / f"{prefix.name}.{kind}.w{shard}of{shards}.jsonl"


def read_partials(prefix: Path, kind: str, key: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    """Every complete completion of `kind` under `prefix` whose file carries `key`; other keys kept aside."""
    done: dict[int, list[dict[str, Any]]] = {}
    for path in sorted(prefix.parent.glob(f"{prefix.name}.{kind}.w*of*.jsonl")):
        lines = path.read_text(encoding="utf-8").split("\n")
        if _json_or_none(lines[0]) != {"key": key}:
            path.rename(path.with_suffix(f".stale-{int(time.time())}"))
            continue
        for line in lines[1:]:
            record = _json_or_none(line)  # a line cut by a kill or a full disk is not complete
            if record is not None:
                done[record["index"]] = record["completions"]
    return done


class PartialWriter:
    def __init__(self, path: Path, key: dict[str, Any]):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file():
            self._append([{"key": key}])

    def add(self, batch: list[tuple[int, list[engines.Completion]]]) -> None:
        self._append([{"index": i, "completions": [c.__dict__ for c in completions]} for i, completions in batch])

    def _append(self, records: list[dict[str, Any]]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(r) + "\n" for r in records))  # one write per batch
            handle.flush()


def shard_indices(prompt_ids: list[list[int]], shard: int, shards: int) -> list[int]:
    order = sorted(range(len(prompt_ids)), key=lambda i: (len(prompt_ids[i]), i))
    return order[shard::shards]


def run(job: dict[str, Any], engine=None, log=print) -> dict[str, Any]:
    """Generate this replica's share for every decoding; returns its timing (seconds, new tokens) per decoding."""
    from tqdm import tqdm

    shard, shards = job["shard"]
    prompt_ids: list[list[int]] = job["prompt_ids"]
    mine = shard_indices(prompt_ids, shard, shards)
    prefix = Path(job["partial_prefix"])
    if engine is None:
        engine = engines.make(job["engine"], job["model_path"], job["batch_size"], job["seed"],
                              job["max_new_tokens"], job.get("tensor_parallel_size", 1))
    timing: dict[str, Any] = {"engine": engine.name, "device": engine.device, "dtype": engine.dtype}
    for fields in job["decodings"]:
        decoding = engines.Decoding(**{**fields, "stop": tuple(fields["stop"])})
        key = job["keys"][decoding.kind]
        done_global = read_partials(prefix, decoding.kind, key)
        writer = PartialWriter(partial_path(prefix, decoding.kind, shard, shards), key)
        local_done = [j for j, i in enumerate(mine) if i in done_global]
        if local_done:
            log(f"eval: {prefix.name} {decoding.kind}: resuming, {len(local_done)} of {len(mine)} problems done")
        bar = tqdm(total=len(mine), initial=len(local_done), unit="problem", file=sys.stderr, disable=None,
                   desc=f"{prefix.name} {decoding.kind}" + (f" [{shard + 1}/{shards}]" if shards > 1 else ""))
        started, tokens = time.perf_counter(), 0

        def on_batch(batch, writer=writer, bar=bar):
            nonlocal tokens
            writer.add([(mine[j], completions) for j, completions in batch])
            tokens += sum(c.tokens for _, cs in batch for c in cs)
            bar.update(len(batch))

        engine.generate([prompt_ids[i] for i in mine], decoding, local_done, on_batch)
        bar.close()
        timing[decoding.kind] = {"wall_seconds": time.perf_counter() - started, "new_tokens": tokens,
                                 "sequences_per_call": engine.cap}
    return timing


@cli
def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m sft_vs_rlvr.evaluate.worker JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(args[0]).read_text())
    timing = run(job, log=lambda message: print(message, file=sys.stderr))
    atomic.write_json(Path(job["timing_file"]), timing)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""SFT learning-curve snapshots as model folders, at a fraction of the disk: convert each training state as it
lands, keep only the latest full state for resume.

open-instruct's finetune.py (v0.3.0, unchanged) writes every --checkpointing_steps a full training state
step_N/ (DeepSpeed's: bf16 weights and the fp32 optimizer, about 105 GiB for 8B), with COMPLETED written after
DeepSpeed's last barrier, and resumes from the highest step_N that has COMPLETED (open_instruct/utils.py
get_last_checkpoint). A learning curve needs only each snapshot's weights (about 15 GiB in bf16). While the SFT
stage runs, the runner (runs.py) polls finetune's output folder with this module:

  convert  every step_N with COMPLETED becomes <run>/snapshots/step_N/: bf16 safetensors, the base config (vocab
           size from the trained embedding), the stage's tokenizer with the shared chat template. Written as
           snapshots/.step_N.partial, verified (every tensor read back and compared), renamed into place, and
           only then marked CONVERTED.json. A conversion killed or failed halfway leaves no model folder; its
           state is kept, the reason goes to snapshots/index.json and the stage manifest, and the next pass
           (or a relaunch) converts it again.
  prune    a converted state is deleted once a newer state is complete (COMPLETED, every rank's files, a settle
           time): COMPLETED is renamed away first (no half-deleted folder can ever be chosen for resume), then
           the folder is renamed out of finetune's output folder into <run>/.trash and removed. The newest
           complete state, and anything newer, is never touched. After the stage has finished, its last state
           goes too: the final model and the snapshots hold everything the evaluation needs.

finetune.py runs with --keep_last_n_checkpoints -1 and --clean_checkpoints_at_end false, so this module is the
only thing that deletes; if it stops, states simply pile up as before and nothing is lost. No file or folder
named step_* or epoch_* is ever made in finetune's output folder (it would parse the name as a step number).

Which weights: ZeRO-1/2 states hold the whole bf16 model in pytorch_model/mp_rank_00_model_states.pt (copied
from the fp32 master after each step: the same weights the final save writes), read without the optimizer
shards; ZeRO-3 states hold only partitions, rebuilt with DeepSpeed's own zero_to_fp32 functions (lazily, one
tensor at a time) and cast to bf16; accelerate's own states (the CPU launch of the tiny profile) hold
model.safetensors. Tied embeddings are stored once, as transformers does.

Runs in open-instruct's environment (ZeRO-3 needs deepspeed): `python -m sft_vs_rlvr.launch.snapshots convert
--config-from MODEL --tokenizer-from TOKENIZER --chat-template NAME [--add-bos] STATE OUT [STATE OUT ...]`, one JSON
line per pair on stdout (its record, or its error); exit status 1 when any pair failed. The watcher converts every
pending state of a pass in one such process.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sft_vs_rlvr import atomic
from sft_vs_rlvr.errors import UserError, cli

STEP = re.compile(r"^step_(\d+)$")
DEEPSPEED_TAG = "pytorch_model"  # accelerate's tag for DeepSpeed states (its MODEL_NAME)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model")
SETTLE_SECONDS = 30.0  # accelerate writes scheduler.bin and random_states_*.pkl after COMPLETED, unguarded


# ---------------------------------------------------------------------------------------------- one state


def state_kind(state: Path) -> str:
    ds = state / DEEPSPEED_TAG
    if (ds / "mp_rank_00_model_states.pt").is_file():
        return "deepspeed-zero2"
    if list(ds.glob("zero_pp_rank_*_mp_rank_00_model_states.pt")):
        return "deepspeed-zero3"
    if (state / "model.safetensors").is_file() or list(state.glob("model*.safetensors")):
        return "accelerate"
    raise UserError(f"{state} holds neither a DeepSpeed state nor accelerate's model.safetensors; it cannot be "
                    "converted")


def _weights(state: Path, kind: str) -> tuple[list[str], Callable[[str], tuple], Callable[[str], Any]]:
    """Tensor names, their shapes, and a getter that returns each as a bf16 CPU tensor, one tensor at a time."""
    import torch

    if kind == "deepspeed-zero2":
        module = torch.load(state / DEEPSPEED_TAG / "mp_rank_00_model_states.pt", map_location="cpu", mmap=True,
                            weights_only=False)["module"]
        return list(module), lambda name: tuple(module[name].shape), lambda name: module[name].to(torch.bfloat16)
    if kind == "deepspeed-zero3":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        lazy = get_fp32_state_dict_from_zero_checkpoint(str(state), tag=DEEPSPEED_TAG, lazy_mode=True)
        return (list(lazy), lambda name: tuple(lazy[name].shape),
                lambda name: lazy[name].contiguous().to(torch.bfloat16))
    from safetensors import safe_open

    handles = {}
    for path in sorted(state.glob("model*.safetensors")):
        handle = safe_open(str(path), framework="pt")
        handles.update({name: handle for name in handle.keys()})
    return (list(handles), lambda name: tuple(handles[name].get_slice(name).get_shape()),
            lambda name: handles[name].get_tensor(name).to(torch.bfloat16))


def convert(state: Path, out: Path, config_from: str, tokenizer_from: str, chat_template: str,
            max_shard_size: str = "5GB") -> dict[str, Any]:
    """state -> model folder `out`, atomically, verified; returns what CONVERTED.json records."""
    import torch
    from huggingface_hub import split_torch_state_dict_into_shards
    from safetensors import safe_open
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    started = time.perf_counter()
    kind = state_kind(state)
    names, shape_of, get = _weights(state, kind)
    config = AutoConfig.from_pretrained(config_from)
    config.vocab_size = int(shape_of("model.embed_tokens.weight")[0])  # finetune.py may resize the embeddings
    config.dtype = "bfloat16"
    if getattr(config, "tie_word_embeddings", False):
        names = [n for n in names if n != "lm_head.weight"]  # stored once, as save_pretrained does
    shapes = {n: torch.empty(shape_of(n), dtype=torch.bfloat16, device="meta") for n in names}
    split = split_torch_state_dict_into_shards(shapes, filename_pattern="model{suffix}.safetensors",
                                               max_shard_size=max_shard_size)
    partial = out.parent / f".{out.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        for filename, tensors in split.filename_to_tensors.items():
            save_file({n: get(n).contiguous() for n in tensors}, str(partial / filename), metadata={"format": "pt"})
        if split.is_sharded:
            atomic.write_json(partial / "model.safetensors.index.json",
                              {"metadata": {"total_size": split.metadata.get("total_size")},
                               "weight_map": split.tensor_to_filename})
        config.save_pretrained(partial)
        try:
            GenerationConfig.from_pretrained(config_from).save_pretrained(partial)
        except OSError:
            pass  # a base model without generation_config.json: the final folder has none either
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
        tokenizer.chat_template = chat_template
        tokenizer.save_pretrained(partial)
        # Verified before it counts: every tensor read back equals the state's.
        for filename, tensors in split.filename_to_tensors.items():
            with safe_open(str(partial / filename), framework="pt") as handle:
                for name in tensors:
                    if not torch.equal(handle.get_tensor(name), get(name)):
                        raise UserError(f"{partial / filename}: {name} differs from {state} after writing")
        if out.exists():
            shutil.rmtree(out)
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # a full disk or a kill leaves no half model folder
        raise
    record = {"source": str(state), "kind": kind, "tensors": len(names), "bytes": sum(
        p.stat().st_size for p in out.glob("*.safetensors")), "seconds": round(time.perf_counter() - started, 1)}
    atomic.write_json(out / "CONVERTED.json", record)  # last: a folder without it is not a snapshot
    return record


# ---------------------------------------------------------------------------------------------- the watcher


def complete_states(output_dir: Path) -> dict[int, Path]:
    """finetune.py's step_N states that have COMPLETED, by step."""
    found = {}
    if output_dir.is_dir():
        for entry in output_dir.iterdir():
            match = STEP.match(entry.name)
            if match and entry.is_dir() and (entry / "COMPLETED").is_file():
                found[int(match.group(1))] = entry
    return dict(sorted(found.items()))


def fully_written(state: Path, settle_seconds: float) -> bool:
    """COMPLETED old enough, and every file a resume reads (scheduler, each rank's RNG state, model states)."""
    completed = state / "COMPLETED"
    if not completed.is_file() or time.time() - completed.stat().st_mtime < settle_seconds:
        return False
    ranks = sorted(state.glob("random_states_*.pkl"))
    if not ranks or not (state / "scheduler.bin").is_file():
        return False
    kind = state_kind(state)
    if kind.startswith("deepspeed"):
        optimizer_shards = list((state / DEEPSPEED_TAG).glob("*_optim_states.pt"))
        return len(optimizer_shards) == len(ranks)
    return True


@dataclass
class Watcher:
    """Converts and prunes finetune.py's states in `output_dir` while it trains (see the module docstring)."""
    output_dir: Path          # finetune's <output_dir>/<exp_name>
    run_dir: Path             # the stage's run folder: snapshots/ and .trash/ go there
    converter: list[str]      # python -m sft_vs_rlvr.launch.snapshots convert, in open-instruct's environment
    settle_seconds: float = SETTLE_SECONDS
    log: Callable[[str], None] = print
    index: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.snapshots = self.run_dir / "snapshots"
        self.trash = self.run_dir / ".trash"
        path = self.snapshots / "index.json"
        self.index = json.loads(path.read_text()) if path.is_file() else {}

    def snapshot(self, step: int) -> Path:
        return self.snapshots / f"step_{step}"

    def converted(self, step: int) -> bool:
        return (self.snapshot(step) / "CONVERTED.json").is_file()

    def _record(self, step: int, **values: Any) -> None:
        self.index.setdefault(str(step), {}).update(values)
        atomic.write_json(self.snapshots / "index.json", self.index)

    def poll(self, training_done: bool = False) -> None:
        states = complete_states(self.output_dir)
        pending = {step: state for step, state in states.items() if not self.converted(step)}
        if pending:
            self._convert(pending)
        settled = [s for s, state in states.items() if fully_written(state, 0.0 if training_done else self.settle_seconds)]
        if not settled:
            return
        newest = max(settled)
        for step, state in states.items():
            older = step < newest or (training_done and step == newest)
            if older and self.converted(step):
                self._prune(step, state)

    def _convert(self, pending: dict[int, Path]) -> None:
        """Every pending state in one converter process: its imports cost seconds, a relaunch may find several."""
        self.snapshots.mkdir(parents=True, exist_ok=True)
        from sft_vs_rlvr.launch import open_instruct

        pairs = [str(path) for step, state in pending.items() for path in (state, self.snapshot(step))]
        result = subprocess.run([*self.converter, *pairs], capture_output=True, text=True,
                                env=open_instruct.environment())  # this package importable there
        outcomes = {}
        for line in result.stdout.splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict) and "state" in item:
                outcomes[item["state"]] = item
        # A state the process never reported on (it was killed, or failed before converting): its last words.
        last_words = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        for step, state in pending.items():
            outcome = outcomes.get(str(state), {"error": last_words[0]})
            if "error" in outcome or not self.converted(step):
                reason = outcome.get("error", "no CONVERTED.json was written")
                self._record(step, status="conversion_failed", reason=reason, state=str(state))
                self.log(f"snapshots: step_{step} could not be converted ({reason}); its state is kept")
                continue
            self._record(step, status="converted", **json.loads((self.snapshot(step) / "CONVERTED.json").read_text()))
            self.log(f"snapshots: step_{step} -> {self.snapshot(step)}")

    def _prune(self, step: int, state: Path) -> None:
        completed = state / "COMPLETED"
        if completed.is_file():
            os.replace(completed, state / "PRUNING")  # never again a candidate for resume
        self.trash.mkdir(parents=True, exist_ok=True)
        aside = self.trash / f"{state.name}.{int(time.time())}"
        os.rename(state, aside)  # one atomic step out of finetune's folder (same filesystem)
        shutil.rmtree(aside, ignore_errors=True)
        self._record(step, pruned=True)
        self.log(f"snapshots: pruned the training state step_{step} (its model folder is {self.snapshot(step)})")

    def entries(self, examples_per_step: int) -> list[dict[str, Any]]:
        """The manifest's checkpoint list: converted snapshots (model folders), else states kept with the reason."""
        out = []
        steps = {int(s) for s in self.index} | set(complete_states(self.output_dir))
        for step in sorted(steps):
            base = {"step": step, "examples_seen": step * examples_per_step}
            if self.converted(step):
                out.append({**base, "path": str(self.snapshot(step).relative_to(self.run_dir)), "kind": "hf_model"})
            elif (state := self.output_dir / f"step_{step}").is_dir():
                entry = {**base, "path": str(state.relative_to(self.run_dir)), "kind": "training_state"}
                reason = self.index.get(str(step), {}).get("reason")
                out.append({**entry, "conversion_error": reason} if reason else entry)
        return out


def converter_command(python: str, config_from: str, tokenizer_from: str, chat_template_name: str,
                      add_bos: bool) -> list[str]:
    return [python, "-m", "sft_vs_rlvr.launch.snapshots", "convert", "--config-from", config_from,
            "--tokenizer-from", tokenizer_from, "--chat-template", chat_template_name] + (["--add-bos"] if add_bos
                                                                                        else [])


@cli
def main(argv: list[str] | None = None) -> int:
    from sft_vs_rlvr import generation, prompts

    parser = argparse.ArgumentParser(prog="python -m sft_vs_rlvr.launch.snapshots", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("convert", help="training states -> model folders, one pair after another")
    one.add_argument("--config-from", required=True, help="the base model (folder or Hub id in the local cache)")
    one.add_argument("--tokenizer-from", required=True, help="the tokenizer the stage trained with")
    one.add_argument("--chat-template", required=True, help="the shared template's name (configs/experiment.toml)")
    one.add_argument("--add-bos", action="store_true", help="the generation contract's BOS choice")
    one.add_argument("pairs", nargs="+", metavar="STATE OUT", help="a training state and its model folder; "
                     "several pairs are converted one after another in this process")
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        raise UserError(f"convert takes STATE OUT pairs, got {len(args.pairs)} paths; give each state its model folder")
    template = generation.prompt_template(prompts.template_text(args.chat_template), args.add_bos)
    failed = 0
    for state, out in zip(args.pairs[::2], args.pairs[1::2]):
        try:
            record = convert(Path(state), Path(out), args.config_from, args.tokenizer_from, template)
        except Exception as error:  # noqa: BLE001 - the next state may still convert; the reason is recorded
            reason = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}".splitlines()[0]
            print(json.dumps({"state": state, "out": out, "error": reason}), flush=True)
            print(f"error: {state}: {reason}", file=sys.stderr, flush=True)
            failed += 1
            continue
        finally:
            gc.collect()  # an 8B state's tensors are gone before the next one is read
        print(json.dumps({"state": state, "out": out, **record}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

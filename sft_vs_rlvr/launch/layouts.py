"""GPU layouts and the run budgets derived from them: what NUM_GPUS and NUM_NODES change, and nothing else.

The launchers never hard-code a GPU count. This module turns (settings, NUM_GPUS, NUM_NODES) into
the numbers the open-instruct commands need, keeping what is learned fixed:
  SFT   processes = GPUs x nodes; each takes effective batch / processes sequences per optimizer step
        (plan.py splits that into micro-batch x gradient accumulation by memory)
  RLVR  learners and vLLM engines per node from configs/layouts.toml; total_episodes for whole epochs of
        prompts (grpo_fast counts training by episodes: steps = total_episodes // (prompts x samples))
  both  snapshots every k optimizer steps, k a divisor of an epoch, so each epoch boundary is a snapshot

The launchers get these numbers through `python -m sft_vs_rlvr.launch.plan export`.
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass

from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.errors import UserError


@dataclass(frozen=True)
class Layout:
    gpus_per_node: int
    nodes: int
    sft_processes: int
    sft_sequences_per_process: int
    sft_steps: int
    sft_steps_per_epoch: int
    sft_checkpoint_every: int
    rlvr_learners_per_node: int
    rlvr_vllm_engines: int
    rlvr_steps: int
    rlvr_steps_per_epoch: int
    rlvr_total_episodes: int
    rlvr_save_every: int
    rlvr_eval_every: int


def visible_gpus() -> int:
    """CUDA_VISIBLE_DEVICES when set, else what nvidia-smi lists, else 0."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
            return sum(1 for line in out.splitlines() if line.startswith("GPU "))
        except (OSError, subprocess.SubprocessError):
            return 0
    return 0


def _positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise UserError(f"{name}={raw!r} must be a positive whole number")
    return int(raw)


def resolve(settings: settings_mod.Settings, gpus_per_node: int | None = None, nodes: int | None = None) -> Layout:
    shared, sft, rlvr = settings.shared, settings.sft, settings.rlvr
    if settings.profile == "tiny":
        gpus_per_node, nodes, learners, engines = 1, 1, 1, 0  # one CPU process, TRL generates in-process
    else:
        table = load_table(settings)
        if gpus_per_node is None:
            gpus_per_node = _positive_int("NUM_GPUS", 0) or visible_gpus()
        nodes = nodes or _positive_int("NUM_NODES", 1)
        if str(gpus_per_node) not in table:
            choices = ", ".join(sorted(table, key=int))
            seen = f"{gpus_per_node} GPUs" if gpus_per_node else "no GPU"
            raise UserError(f"no layout for {seen} per node; set NUM_GPUS to one of {choices} "
                            "(or add a [gpus.N] entry to configs/layouts.toml)")
        entry = table[str(gpus_per_node)]
        learners, engines = entry["rlvr_learners"], entry["rlvr_vllm_engines"]
        if learners + engines != gpus_per_node:
            raise UserError(f"configs/layouts.toml [gpus.{gpus_per_node}]: {learners} learners + {engines} vLLM "
                            f"engines do not add up to {gpus_per_node} GPUs; fix the entry")
    processes = gpus_per_node * nodes
    if sft["effective_batch_size"] % processes:
        raise UserError(
            f"effective_batch_size {sft['effective_batch_size']} cannot be split evenly over {processes} SFT processes "
            f"({gpus_per_node} GPUs x {nodes} nodes); choose a GPU count that divides it or change configs/sft.toml")
    sft_steps_per_epoch = math.ceil(shared["train_size"] / sft["effective_batch_size"])
    sft_steps = sft_steps_per_epoch * sft["epochs"]
    # Whole epochs of prompts: every epoch boundary is an optimizer step, so the snapshot taken there (the
    # equal-exposure point) shows each arm after exactly one pass over the same questions.
    rlvr_steps_per_epoch = math.ceil(shared["train_size"] / rlvr["prompts_per_step"])
    rlvr_steps = rlvr_steps_per_epoch * rlvr["epochs"]
    rlvr_save_every = snapshot_interval(rlvr_steps_per_epoch, rlvr_steps, rlvr["checkpoints"])
    return Layout(
        gpus_per_node=gpus_per_node, nodes=nodes, sft_processes=processes,
        sft_sequences_per_process=sft["effective_batch_size"] // processes,
        sft_steps=sft_steps, sft_steps_per_epoch=sft_steps_per_epoch,
        sft_checkpoint_every=snapshot_interval(sft_steps_per_epoch, sft_steps, sft["checkpoints"]),
        rlvr_learners_per_node=learners, rlvr_vllm_engines=engines * nodes,
        rlvr_steps=rlvr_steps, rlvr_steps_per_epoch=rlvr_steps_per_epoch,
        rlvr_total_episodes=rlvr_steps * rlvr["prompts_per_step"] * rlvr["samples_per_prompt"],
        rlvr_save_every=rlvr_save_every,
        rlvr_eval_every=rlvr_save_every,
    )


def snapshot_interval(steps_per_epoch: int, total_steps: int, wanted: int) -> int:
    """Optimizer steps between snapshots: the smallest divisor of an epoch's steps that gives at most `wanted`
    snapshots, so every epoch boundary is a snapshot (an epoch-long interval when fewer are wanted)."""
    target = total_steps / max(1, wanted)
    divisors = [d for d in range(1, steps_per_epoch + 1) if steps_per_epoch % d == 0 and d >= target]
    return min(divisors) if divisors else steps_per_epoch


def load_table(settings: settings_mod.Settings) -> dict:
    path = settings.config_dir / "layouts.toml"
    if not path.is_file():
        raise UserError(f"{path} is missing; restore it from git")
    with path.open("rb") as handle:
        return tomllib.load(handle).get("gpus", {})


def shell_exports(layout: Layout) -> str:
    values = {
        "NUM_GPUS": layout.gpus_per_node, "NUM_NODES": layout.nodes,
        "SFT_NUM_PROCESSES": layout.sft_processes,
        "SFT_STEPS": layout.sft_steps, "SFT_STEPS_PER_EPOCH": layout.sft_steps_per_epoch,
        "SFT_CHECKPOINT_EVERY": layout.sft_checkpoint_every,
        # grpo_fast takes one learner count per node (a list)
        "RLVR_LEARNERS_PER_NODE": " ".join([str(layout.rlvr_learners_per_node)] * layout.nodes),
        "RLVR_VLLM_ENGINES": layout.rlvr_vllm_engines, "RLVR_STEPS": layout.rlvr_steps,
        "RLVR_STEPS_PER_EPOCH": layout.rlvr_steps_per_epoch,
        "RLVR_TOTAL_EPISODES": layout.rlvr_total_episodes, "RLVR_SAVE_EVERY": layout.rlvr_save_every,
        "RLVR_EVAL_EVERY": layout.rlvr_eval_every,
    }
    return "".join(f"export {k}={shlex.quote(str(v))}\n" for k, v in values.items())


def main(argv: list[str] | None = None) -> int:
    """`python -m sft_vs_rlvr.launch.layouts visible`: the number of visible GPUs (0 on a CPU machine)."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["visible"]:
        print("usage: python -m sft_vs_rlvr.launch.layouts visible", file=sys.stderr)
        return 2
    print(visible_gpus())
    return 0


if __name__ == "__main__":
    sys.exit(main())

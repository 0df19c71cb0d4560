"""The dress rehearsal (`make gpu-check`): the whole experiment on the tiny model through the llama8b stack, on a
GPU box, in minutes, before any 8B run.

Every step runs the project's own entry points (the launchers, the evaluator, the report) on the tiny profile with
the GPU path switched on: SFT by open-instruct's finetune.py under accelerate + DeepSpeed ZeRO-2 + Liger, its
states turned into snapshot model folders, the RL pilot, GRPO by grpo_fast.py in open-instruct's single-GPU mode
(Ray + vLLM), evaluation with vLLM (and with transformers on the GPU), the report. A step that needs what the
machine lacks (vLLM, Ray, DeepSpeed) is reported as "cannot run here: <what is missing>", never as passed, and
the steps after it that can still run do.

Prints a table (step, result, seconds, detail) and writes it to <root>/gpu_check.md and gpu_check.json.
Run folders go to <root> (default: <output_root>/gpu-check-<UTC time>); nothing else is touched.

Usage: python -m sft_vs_rlvr.launch.gpu_check [--root DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sft_vs_rlvr import atomic
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.errors import UserError, cli
from sft_vs_rlvr.launch import open_instruct

REPO = settings_mod.REPO_ROOT
PASS, FAIL, NOT_RUN = "pass", "FAIL", "cannot run here"


@dataclass
class Step:
    name: str
    result: str
    seconds: float
    detail: str


def _importable(python: str, module: str, env: dict[str, str]) -> bool:
    probe = subprocess.run([python, "-c", f"import {module}"], env=env, capture_output=True, text=True, timeout=600)
    return probe.returncode == 0


def _tail(text: str, lines: int = 1) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return " / ".join(kept[-lines:]) if kept else "no output"


class Rehearsal:
    def __init__(self, root: Path):
        self.root = root
        self.steps: list[Step] = []
        self.env = {**os.environ, "PROFILE": "tiny", "OUTPUT_ROOT": str(root / "runs"), "HF_HUB_OFFLINE": "1",
                    "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "offline",
                    "SFT_VS_RLVR_CACHE": os.environ.get("SFT_VS_RLVR_CACHE", str(root / "cache"))}
        self.env.pop("EXPERIMENT_ID", None)

    def record(self, name: str, result: str, started: float, detail: str) -> Step:
        step = Step(name, result, round(time.perf_counter() - started, 1), detail)
        self.steps.append(step)
        print(f"gpu-check: {name}: {result} ({step.seconds:.0f} s) {detail}", file=sys.stderr, flush=True)
        return step

    def run(self, name: str, command: list[str], ok_detail: str, env: dict[str, str] | None = None,
            timeout: int = 1800) -> Step:
        started = time.perf_counter()
        log = self.root / "logs" / (name.split(":")[0].replace(" ", "_") + ".log")
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            result = subprocess.run(command, cwd=REPO, env=env or self.env, capture_output=True, text=True,
                                    timeout=timeout)
        except subprocess.TimeoutExpired:
            return self.record(name, FAIL, started, f"timed out after {timeout} s")
        log.write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            return self.record(name, FAIL, started, f"{_tail(result.stderr or result.stdout)} (log: {log})")
        return self.record(name, PASS, started, ok_detail)

    def not_run(self, name: str, missing: str) -> Step:
        return self.record(name, f"{NOT_RUN}: {missing}", time.perf_counter(), "")

    def experiment(self) -> Path:
        return self.root / "runs" / "tiny-seed42"


def rehearse(root: Path) -> list[Step]:
    r = Rehearsal(root)
    started = time.perf_counter()
    import torch

    if not torch.cuda.is_available():
        r.record("GPU visible to PyTorch", FAIL, started, "no CUDA device: run this on the GPU box")
        return r.steps
    r.record("GPU visible to PyTorch", PASS, started,
             f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}, torch {torch.__version__}")

    started = time.perf_counter()
    try:
        found = open_instruct.check()
        oi_python = str(open_instruct.python())
        r.record("open-instruct checkout and environment", PASS, started, found)
    except UserError as error:
        r.record("open-instruct checkout and environment", FAIL, started, str(error))
        oi_python = None
    oi_env = {**r.env, **open_instruct.environment()}
    have = {m: bool(oi_python) and _importable(oi_python, m, oi_env) for m in ("deepspeed", "vllm", "ray")}
    missing_rl = [m for m in ("ray", "vllm") if not have[m]]
    r.record("open-instruct environment: deepspeed, vllm, ray", PASS if all(have.values()) else
             f"{NOT_RUN}: " + ", ".join(m for m, ok in have.items() if not ok) + " missing", time.perf_counter(),
             ", ".join(f"{m} {'importable' if ok else 'missing'}" for m, ok in have.items()))

    r.run("tracking stack (wandb, TRL) imports under the pinned protobuf",
          [sys.executable, "-c", "import google.protobuf, wandb, trl; print(google.protobuf.__version__)"],
          "project environment")

    sft_env = {**r.env, "SFT_TRAINER": "open-instruct"}
    if oi_python and have["deepspeed"]:
        step = r.run("SFT: finetune.py, accelerate + DeepSpeed ZeRO-2 + Liger, 1 GPU",
                     ["./experiment_sft_llama8b.sh"], "tiny model, through the launcher's run folder", sft_env)
        if step.result == PASS:
            manifest = json.loads((r.experiment() / "sft" / "manifest.json").read_text())
            kinds = [c["kind"] for c in manifest["checkpoints"]]
            states = list((r.experiment() / "sft" / "output" / "sft").glob("step_*"))
            ok = kinds and set(kinds) == {"hf_model"} and not states
            r.record("SFT snapshots: DeepSpeed states -> model folders, states pruned", PASS if ok else FAIL,
                     time.perf_counter(), f"{len(kinds)} snapshots, {len(states)} states left; compute "
                                          f"{manifest.get('compute')}")
    else:
        r.not_run("SFT: finetune.py, accelerate + DeepSpeed ZeRO-2 + Liger, 1 GPU", "deepspeed missing")
        r.run("SFT on the GPU with TRL (instead of finetune.py)", ["./experiment_sft_llama8b.sh"], "tiny profile",
              r.env)

    rl_env = {**r.env, "RLVR_TRAINER": "open-instruct"}
    if not missing_rl:
        r.run("RL pilot with vLLM in open-instruct's environment", ["./experiment_rlvr_llama8b.sh", "--pilot"],
              "tiny base model", rl_env)
        r.run("GRPO: grpo_fast.py single-GPU mode (Ray + vLLM)", ["./experiment_rlvr_llama8b.sh"],
              "tiny model (FORCE=1: the pilot is the step above)", {**rl_env, "FORCE": "1"})
    else:
        r.not_run("RL pilot with vLLM in open-instruct's environment", ", ".join(missing_rl) + " missing")
        r.not_run("GRPO: grpo_fast.py single-GPU mode (Ray + vLLM)", ", ".join(missing_rl) + " missing")
        r.run("RL pilot with transformers on the GPU", ["./experiment_rlvr_llama8b.sh", "--pilot"],
              "tiny base model, project environment", r.env)
        r.run("RLVR with TRL on the GPU (instead of grpo_fast.py)", ["./experiment_rlvr_llama8b.sh"],
              "tiny profile's trainer, so the later steps have an RL arm (FORCE=1: the pilot is the step above)",
              {**r.env, "FORCE": "1"})

    config = root / "configs-vllm"
    shutil.copytree(settings_mod.DEFAULT_CONFIG_DIR, config, dirs_exist_ok=True)
    text = (config / "eval.toml").read_text()
    (config / "eval.toml").write_text(text.replace('engine = "transformers"', 'engine = "vllm"', 1))
    if oi_python and have["vllm"]:
        vllm_env = {**oi_env, "CONFIG_DIR": str(config), "PATH": f"{Path(oi_python).parent}{os.pathsep}{oi_env['PATH']}"}
        r.run("evaluation with vLLM (open-instruct's environment)", ["./evaluate_comparison.sh", "--force"],
              "every model and checkpoint", vllm_env)
    else:
        r.not_run("evaluation with vLLM (open-instruct's environment)", "vllm missing")
    r.run("evaluation with transformers on the GPU (bf16), every model and checkpoint",
          ["./evaluate_comparison.sh", "--force"], "the tiny profile's engine", r.env)
    r.run("report (analyze_results.py --weights)",
          [sys.executable, "analyze_results.py", "--weights", "--experiment-dir", str(r.experiment())],
          f"{r.experiment() / 'report' / 'report.md'}", r.env)
    return r.steps


def table(steps: list[Step]) -> str:
    lines = ["| step | result | seconds | detail |", "| --- | --- | --- | --- |"]
    lines += [f"| {s.name} | {s.result} | {s.seconds:.0f} | {s.detail.replace('|', '/')} |" for s in steps]
    return "\n".join(lines) + "\n"


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sft_vs_rlvr.launch.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="where the rehearsal's run folders go (default: <output_root>/gpu-check-<time>)")
    args = parser.parse_args(argv)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    root = Path(args.root) if args.root else settings_mod.load("tiny").output_root / f"gpu-check-{stamp}"
    if root.exists() and any(root.iterdir()):
        raise UserError(f"{root} exists and is not empty; give another --root")
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    steps = rehearse(root)
    text = table(steps)
    atomic.write_text(root / "gpu_check.md", text)
    atomic.write_json(root / "gpu_check.json", {"steps": [asdict(s) for s in steps],
                                                 "seconds": round(time.perf_counter() - started, 1)})
    print(text, end="")
    print(f"gpu-check: {len([s for s in steps if s.result == PASS])} passed, "
          f"{len([s for s in steps if s.result == FAIL])} failed, "
          f"{len([s for s in steps if s.result.startswith(NOT_RUN)])} not run, in "
          f"{time.perf_counter() - started:.0f} s; {root / 'gpu_check.md'}", file=sys.stderr)
    return 1 if any(s.result == FAIL for s in steps) else 0


if __name__ == "__main__":
    sys.exit(main())

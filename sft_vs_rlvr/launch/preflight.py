"""Checks before any GPU time is spent: each failure is one line naming the problem and the fix.

  environment  (before the run folder is written)
    GPUs         the layout's GPU count is visible (memory is checked by plan.py, which the launchers ran first)
    open-instruct  the checkout at the pinned tag and its environment are present
    Hub          a Hugging Face token is present and can read the (gated) base model; skipped for a
                 local model folder, or checked in the local cache under HF_HUB_OFFLINE=1
    disk         the output root's disk has room for the stage's checkpoints (plan.py's estimate)
    W&B          logged in, or offline mode chosen and said
    Ray          (GRPO) enough CPUs for grpo_fast's placement groups: 10 per learner GPU, 1 per engine, 3 more
  command      (after the command is built)
    the flag manifest of the pinned open-instruct, then open-instruct's own parser in its own environment
    (dataclass __post_init__ checks included), through sft_vs_rlvr.launch.oi_parse

Command line (used by the launchers):
  python -m sft_vs_rlvr.launch.preflight environment {sft,rlvr,sft_rlvr} --profile P
  python -m sft_vs_rlvr.launch.preflight command -- COMMAND...
  python -m sft_vs_rlvr.launch.preflight ray-cpus --profile P      the CPUs grpo_fast books per node (scripts/ray_cluster.sh)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from sft_vs_rlvr import contract, tracking
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.errors import UserError, cli
from sft_vs_rlvr.launch import layouts, oi_flags, open_instruct
from sft_vs_rlvr.launch import plan as plan_mod

RAY_CPUS_PER_LEARNER_GPU = 10  # grpo_fast_resource_plan.py at v0.3.0
RAY_EXTRA_CPUS = 3             # data preparation actor 2 + actor manager 1
GIB = 2**30


def check_gpus(layout: layouts.Layout) -> str:
    seen = layouts.visible_gpus()
    if seen == 0:
        raise UserError(f"no GPU is visible, and the layout needs {layout.gpus_per_node} per node; run on the GPU box, "
                        "or use PROFILE=tiny on a CPU machine (--plan and --dry-run work anywhere)")
    if seen < layout.gpus_per_node:
        raise UserError(f"NUM_GPUS={layout.gpus_per_node} but only {seen} GPU(s) are visible; set NUM_GPUS={seen} if "
                        f"configs/layouts.toml has that layout, or check CUDA_VISIBLE_DEVICES")
    return f"GPUs: {seen} visible, layout uses {layout.gpus_per_node} per node"


def check_hub_access(model: str) -> str:
    if Path(model).is_dir():
        return f"model: local folder {model}; no Hub access needed"
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if os.environ.get("HF_HUB_OFFLINE") == "1":
        if isinstance(huggingface_hub.try_to_load_from_cache(model, "config.json"), str):
            return f"model: {model} from the local Hugging Face cache (HF_HUB_OFFLINE=1)"
        raise UserError(f"HF_HUB_OFFLINE=1 but {model} is not in the local Hugging Face cache; download it first "
                        f"(hf download {model}) or unset HF_HUB_OFFLINE")
    token = huggingface_hub.get_token()
    if not token:
        raise UserError(f"no Hugging Face token, and {model} is gated; accept its licence on "
                        f"https://huggingface.co/{model}, then run 'hf auth login' or set HF_TOKEN")
    try:
        huggingface_hub.auth_check(model, token=token)
    except GatedRepoError:
        raise UserError(f"your Hugging Face token cannot read the gated {model}; accept the licence on "
                        f"https://huggingface.co/{model} with that account (approval can take a while)") from None
    except RepositoryNotFoundError:
        raise UserError(f"{model} was not found on the Hub with your token; check base_model in "
                        "configs/experiment.toml") from None
    except Exception as error:  # noqa: BLE001 - network problems come in many types
        raise UserError(f"cannot reach the Hugging Face Hub to check {model} ({type(error).__name__}); check the "
                        "network, or download the model and set HF_HUB_OFFLINE=1") from None
    return f"model: {model} readable with your Hugging Face token"


def disk_needed(plan: plan_mod.Plan, stage: str) -> float:
    figures = plan.figures["sft" if stage == "sft" else "rlvr"]
    return float(figures.get("disk_bytes", 0.0))


def check_disk(where: Path, needed: float, stage: str) -> str:
    existing = where
    while not existing.exists():
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free < needed:
        setting = "configs/sft.toml" if stage == "sft" else "configs/rlvr.toml"
        raise UserError(f"{stage} needs about {needed / GIB:,.0f} GiB for its checkpoints but {existing} has "
                        f"{free / GIB:,.0f} GiB free; free space, point OUTPUT_ROOT at a larger disk, or lower "
                        f"'checkpoints' in {setting} (see --plan)")
    return f"disk: {free / GIB:,.0f} GiB free at {existing}, about {needed / GIB:,.0f} GiB needed"


def check_wandb(settings: settings_mod.Settings) -> str:
    mode, why = tracking.choose_mode(settings)
    if mode == "online" and not tracking.logged_in():
        raise UserError("WANDB_MODE=online but no W&B key was found; run 'wandb login' or set WANDB_API_KEY, "
                        "or choose WANDB_MODE=offline (sync later with 'wandb sync')")
    if mode == "offline":
        return f"W&B: offline ({why}); the run is written to its folder, 'wandb sync' uploads it later"
    return f"W&B: {mode} ({why})"


def ray_cpus_needed(layout: layouts.Layout) -> int:
    engines_per_node = layout.rlvr_vllm_engines // layout.nodes
    return RAY_CPUS_PER_LEARNER_GPU * layout.rlvr_learners_per_node + engines_per_node + RAY_EXTRA_CPUS


def check_ray(layout: layouts.Layout, cpus: int | None = None) -> str:
    needed = ray_cpus_needed(layout)
    if layout.nodes > 1 or os.environ.get("RAY_ADDRESS") or Path("/tmp/ray/ray_current_cluster").exists():
        return (f"Ray: using a running cluster; grpo_fast needs {needed} CPUs per node in it (10 per learner GPU) "
                "and waits up to 20 min for them")
    cpus = cpus if cpus is not None else (os.cpu_count() or 1)
    if cpus < needed:
        raise UserError(f"grpo_fast asks Ray for {needed} CPUs (10 per learner GPU) but this machine has {cpus}; "
                        f"start Ray with logical CPUs first: 'ray start --head --num-cpus={needed}', then rerun "
                        "(grpo_fast attaches to it; the CPU count is bookkeeping, not a speed requirement)")
    return f"Ray: {cpus} CPUs, {needed} needed"


def environment(settings: settings_mod.Settings, stage: str) -> list[str]:
    """Every environment check of a GPU launch, in the order a user would fix them; returns what passed."""
    plan = plan_mod.build(settings, with_data=False)
    said = [check_gpus(plan.layout), open_instruct.check()]
    if stage != "sft_rlvr":  # the hybrid arm starts from the SFT model folder, already on disk
        said.append(check_hub_access(settings.shared["base_model"]))
    said.append(check_disk(settings.output_root, disk_needed(plan, stage), stage))
    said.append(check_wandb(settings))
    if stage != "sft":
        said.append(check_ray(plan.layout))
    return said


def command(cmd: list[str]) -> str:
    """The generated command against the flag manifest, then open-instruct's own parser where it is installed."""
    entrypoint, arguments = oi_flags.split_command(cmd)
    problems = oi_flags.check(entrypoint, arguments)
    if problems:
        raise UserError(f"the generated {entrypoint} command has flags open-instruct {contract.OPEN_INSTRUCT_TAG} "
                        f"does not accept: {problems[0]}; this is a bug in the launcher, please report it")
    python = open_instruct.python()
    if not python.is_file():
        raise UserError(f"open-instruct's environment is missing ({python}); run 'make setup-gpu'")
    result = subprocess.run([str(python), "-m", "sft_vs_rlvr.launch.oi_parse", entrypoint, "--", *arguments],
                            env=open_instruct.environment(), capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        raise UserError(lines[-1].removeprefix("error: ") if lines else f"open-instruct's parser failed ({result.returncode})")
    return f"open-instruct {contract.OPEN_INSTRUCT_TAG} parser accepts the {entrypoint} command"


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sft_vs_rlvr.launch.preflight", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    env = sub.add_parser("environment")
    env.add_argument("stage", choices=contract.ARMS)
    env.add_argument("--profile", default=os.environ.get("PROFILE", "llama8b"))
    cmd = sub.add_parser("command")
    cmd.add_argument("cmd", nargs=argparse.REMAINDER)
    ray = sub.add_parser("ray-cpus")
    ray.add_argument("--profile", default=os.environ.get("PROFILE", "llama8b"))
    args = parser.parse_args(argv)
    if args.what == "ray-cpus":
        print(ray_cpus_needed(layouts.resolve(settings_mod.load(args.profile))))
        return 0
    if args.what == "environment":
        said = environment(settings_mod.load(args.profile), args.stage)
    else:
        said = [command(args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd)]
    for line in said:
        print(f"preflight: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

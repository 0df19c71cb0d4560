"""W&B set-up for a stage: online when logged in, offline otherwise, said either way.

Both trainers (TRL here, open-instruct on GPUs) read the standard WANDB_* variables, so the
runner sets them and every stage of one experiment shares a project (settings) and a group
(the experiment id). The run id is chosen here so the manifest knows it before the run starts.

Mode: WANDB_MODE when set; the tiny profile otherwise stays offline (a demo publishes nothing);
otherwise online when a key is present (WANDB_API_KEY or ~/.netrc), else offline.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shlex
import sys
from pathlib import Path
from typing import Any

from sft_vs_rlvr.errors import cli
from sft_vs_rlvr.settings import Settings, load


def logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def choose_mode(settings: Settings) -> tuple[str, str]:
    """(mode, why) where mode is online, offline or disabled."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"], "WANDB_MODE is set"
    if settings.profile == "tiny":
        return "offline", "the tiny profile logs offline unless WANDB_MODE=online"
    if logged_in():
        return "online", "a W&B key was found"
    return "offline", "no W&B login found (wandb login, or WANDB_API_KEY)"


def wandb_env(settings: Settings, experiment_id: str, stage: str, run_dir: Path) -> tuple[dict[str, str], dict[str, Any]]:
    mode, why = choose_mode(settings)
    run_id = f"{stage}-{secrets.token_hex(4)}"
    env = {
        "WANDB_MODE": mode, "WANDB_PROJECT": settings.shared["wandb_project"], "WANDB_RUN_GROUP": experiment_id,
        "WANDB_RUN_ID": run_id, "WANDB_NAME": f"{experiment_id}-{stage}", "WANDB_DIR": str(run_dir),
        "WANDB_SILENT": os.environ.get("WANDB_SILENT", "true"),
    }
    info = {
        "mode": mode, "why": why, "project": env["WANDB_PROJECT"], "group": experiment_id, "run_id": run_id,
        "run_name": env["WANDB_NAME"], "dir": "wandb", "url": None,
        "sync_command": f"wandb sync {run_dir}/wandb/offline-run-*-{run_id}*" if mode == "offline" else None,
    }
    print(f"W&B: {mode} ({why}); project {env['WANDB_PROJECT']}, group {experiment_id}, run {run_id}"
          + (f"; sync later with: {info['sync_command']}" if mode == "offline" else ""))
    return env, info


def finish_info(info: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Add the run URL that W&B printed (online runs) to the manifest's wandb block."""
    if info["mode"] != "online":
        return info
    log = run_dir / "train.log"
    text = log.read_text(errors="replace") if log.is_file() else ""
    match = re.search(r"https://\S*wandb\S*/runs/" + re.escape(info["run_id"]), text)
    return {**info, "url": match.group(0) if match else None}



@cli
def main(argv: list[str] | None = None) -> int:
    """`python -m sft_vs_rlvr.tracking export --profile P`: WANDB_MODE and WANDB_ENTITY for a launcher.

    open-instruct's trainers look up an entity through the W&B API when none is given, which fails
    offline; offline runs therefore get a placeholder entity (`wandb sync --entity` sets the real one).
    """
    parser = argparse.ArgumentParser(prog="python -m sft_vs_rlvr.tracking", description=main.__doc__)
    parser.add_argument("command", choices=["export"])
    parser.add_argument("--profile", default=os.environ.get("PROFILE", "llama8b"))
    args = parser.parse_args(argv)
    mode, why = choose_mode(load(args.profile))
    entity = os.environ.get("WANDB_ENTITY") or ("offline" if mode == "offline" else "")
    print(f"export WANDB_MODE={shlex.quote(mode)}\nexport WANDB_ENTITY={shlex.quote(entity)}")
    print(f"W&B: {mode} ({why})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

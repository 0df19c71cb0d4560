"""Experiments and run folders: which folder a launch writes to, and what it records there.

An experiment is a folder `<output_root>/<experiment id>/` owned by one set of shared settings
(experiment.json holds their fingerprint). Each training stage writes one run folder in it
(`sft/`, `rlvr/`) with a manifest, a log, the final model and checkpoints (docs/FORMATS.md).

Which experiment a launch uses, first match wins:
  EXPERIMENT_ID=<id>                 that one
  --fresh                            a new id (<profile>-seed<seed>-<UTC time>), remembered as current
  <output_root>/.current-<profile>   the id the last --fresh made
  otherwise                          <profile>-seed<seed>

Command line (used by the launchers):
  python -m sft_vs_rlvr.runs begin {sft,rlvr} --profile P [--fresh]   checks, prepares data, prints exports
  python -m sft_vs_rlvr.runs run --run-dir DIR -- COMMAND...           runs COMMAND and records it
  python -m sft_vs_rlvr.runs locate --profile P                         prints EXPERIMENT_DIR for later stages
  python -m sft_vs_rlvr.runs init-model --from sft --profile P          prints INIT_MODEL: a finished arm's model
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

from sft_vs_rlvr import atomic, contract, data_prep, shell_command, tracking
from sft_vs_rlvr import settings as settings_mod
from sft_vs_rlvr.errors import UserError, cli
from sft_vs_rlvr.launch import snapshots

SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "WANDB_API_KEY")
# Environment a stage's command depends on, written into command.sh when set (W&B's come from tracking.py).
COMMAND_ENV = ("HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "PYTHONPATH", "CUDA_VISIBLE_DEVICES",
               "RAY_ADDRESS", "TOKENIZERS_PARALLELISM", "LITELLM_LOCAL_MODEL_COST_MAP", "DS_ACCELERATOR")
COMMAND_ENV_PREFIXES = ("NCCL_", "VLLM_")
PACKAGES = ("torch", "transformers", "trl", "accelerate", "datasets", "tokenizers", "wandb", "deepspeed",
            "vllm", "ray", "open-instruct", "sft-vs-rlvr")
# Profiles whose trainers resume from their own saved state when relaunched into the same folder.
RESUME_IN_PLACE = ("llama8b",)
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------------------------
# Which experiment


def _pointer(settings: settings_mod.Settings) -> Path:
    return settings.output_root / f".current-{settings.profile}"


def experiment_id(settings: settings_mod.Settings, fresh: bool = False) -> str:
    explicit = os.environ.get("EXPERIMENT_ID")
    if explicit:
        if not _ID_PATTERN.match(explicit):
            raise UserError(f"EXPERIMENT_ID={explicit!r} is not a valid id; use letters, digits, '.', '_' and '-'")
        return explicit
    default = f"{settings.profile}-seed{settings.shared['seed']}"
    if fresh:
        new = f"{default}-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%d-%H%M%S')}"
        atomic.write_text(_pointer(settings), new + "\n")
        return new
    pointer = _pointer(settings)
    if pointer.is_file():
        current = pointer.read_text().strip()
        if current == default or current.startswith(f"{default}-"):  # SEED=<n> names another seed's experiment
            return current
    return default


def claim_experiment(settings: settings_mod.Settings, exp_dir: Path) -> None:
    """Create experiment.json, or check that the folder belongs to these shared settings."""
    marker = exp_dir / "experiment.json"
    if marker.is_file():
        owner = json.loads(marker.read_text())
        if owner.get("profile") != settings.profile or owner.get("shared_fingerprint") != settings.fingerprint():
            changed = sorted(k for k in set(owner.get("shared", {})) | set(settings.shared)
                             if owner.get("shared", {}).get(k) != settings.shared.get(k))
            raise UserError(
                f"{exp_dir} belongs to another experiment (profile {owner.get('profile')}, settings differ in: "
                f"{', '.join(changed) or 'profile'}); start a new one with --fresh or set EXPERIMENT_ID")
        return
    if exp_dir.exists() and any(exp_dir.iterdir()):
        raise UserError(f"{exp_dir} exists and is not an sft-vs-rlvr experiment folder; choose another "
                        "EXPERIMENT_ID or OUTPUT_ROOT")
    atomic.write_json(marker, {
        "format": contract.EXPERIMENT.id, "version": contract.EXPERIMENT.version, "experiment_id": exp_dir.name, "profile": settings.profile,
        "shared": settings.shared, "shared_fingerprint": settings.fingerprint(), "created_at": utc_now(),
    })


def finished_model(settings: settings_mod.Settings, stage: str, dry_run: bool = False) -> Path:
    """The model folder of a completed stage of the current experiment (the hybrid arm starts from SFT's).

    With dry_run and no finished stage yet: where that stage will write its model (for --dry-run output).
    """
    exp_dir = settings.output_root / experiment_id(settings)
    folder = final_model_folder(exp_dir / stage)
    if dry_run and folder is None:
        return exp_dir / stage / ("model" if settings.profile == "tiny" else f"output/{stage}")
    if folder is None:
        raise UserError(f"INIT_FROM={stage} needs a finished {stage} run in {exp_dir / stage}; run "
                        f"PROFILE={settings.profile} ./experiment_{stage}_llama8b.sh first")
    return folder


def final_model_folder(run_dir: Path) -> Path | None:
    """The final model of a completed stage, as its manifest records it; None while it is not finished."""
    manifest = read_manifest(run_dir)
    if not manifest or manifest["status"] != "completed" or not manifest.get("final_model"):
        return None
    return run_dir / manifest["final_model"]


def locate(settings: settings_mod.Settings) -> Path:
    """The current experiment folder for a later stage (evaluation, analysis); it must exist."""
    exp_dir = settings.output_root / experiment_id(settings)
    if not (exp_dir / "experiment.json").is_file():
        raise UserError(f"no experiment at {exp_dir}; run ./experiment_sft_llama8b.sh and "
                        f"./experiment_rlvr_llama8b.sh (PROFILE={settings.profile}) first")
    claim_experiment(settings, exp_dir)
    return exp_dir


def seed_folders(settings: settings_mod.Settings, seeds_text: str) -> list[Path]:
    """The experiment folder of each seed in "42,43,44": the newest of <profile>-seed<n> and its --fresh
    variants <profile>-seed<n>-<time> (by experiment.json's created_at)."""
    try:
        seeds = [int(part) for part in seeds_text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--seeds {seeds_text!r} is not a comma-separated list of whole numbers, e.g. 42,43,44") from None
    if len(seeds) < 2:
        raise UserError(f"--seeds {seeds_text!r} names {len(seeds)} seed; give at least two, e.g. 42,43")
    folders = []
    for seed in seeds:
        name = f"{settings.profile}-seed{seed}"
        owners = [settings.output_root / name / "experiment.json", *settings.output_root.glob(f"{name}-*/experiment.json")]
        found = sorted((json.loads(p.read_text()).get("created_at") or "", p.parent) for p in owners if p.is_file())
        if not found:
            raise UserError(f"no experiment for seed {seed} under {settings.output_root} ({name}): run "
                            f"SEED={seed} ./experiment_sft_llama8b.sh, ./experiment_rlvr_llama8b.sh and "
                            f"./evaluate_comparison.sh (PROFILE={settings.profile}), or leave seed {seed} out")
        folders.append(found[-1][1])
    return folders


# ----------------------------------------------------------------------------------------------
# Stage folders


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "manifest.json"
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    if manifest.get("format") != contract.MANIFEST.id or manifest.get("version") not in contract.MANIFEST.readable:
        raise UserError(f"{path} is not a version-{contract.MANIFEST.version} stage manifest; it was written by another "
                        "version of this project: start a new experiment with --fresh")
    return manifest


def _lock_is_held(run_dir: Path) -> bool:
    lock_path = run_dir / ".lock"
    if not lock_path.exists():
        return False
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def stage_status(settings: settings_mod.Settings, run_dir: Path) -> str:
    """Status of a stage folder: new, completed or interrupted (failed or killed; begin_stage resumes or moves it)."""
    manifest = read_manifest(run_dir)
    if manifest is None:
        # The pilot runs before the stage (launch/pilot.py): its pilot.json alone is not an earlier attempt.
        if run_dir.exists() and any(p.name not in (".lock", "pilot.json") for p in run_dir.iterdir()):
            return "interrupted"
        return "new"
    if manifest["status"] == "completed":
        stage = manifest["stage"]
        if manifest["settings_fingerprints"].get(stage) != settings.fingerprint(stage):
            raise UserError(
                f"{run_dir} was completed with other {stage} settings than configs/{stage}.toml now holds; "
                "start a new experiment with --fresh (the finished run is kept)")
        return "completed"
    if _lock_is_held(run_dir):
        raise UserError(f"{run_dir} is being written by a running launch (started {manifest['started_at']}); "
                        "wait for it or stop it first")
    return "interrupted"


def begin_stage(settings: settings_mod.Settings, stage: str, fresh: bool, log=print,
                dry_run: bool = False) -> dict[str, str]:
    """Everything cheap that can fail, before any expensive step. Returns the launcher's variables.

    With dry_run, only the paths are worked out: nothing is written, moved or prepared.
    """
    if dry_run:
        exp_id = os.environ.get("EXPERIMENT_ID") or (
            f"{settings.profile}-seed{settings.shared['seed']}-<new>" if fresh else experiment_id(settings))
        exp_dir = settings.output_root / exp_id
        return {"EXPERIMENT_ID": exp_id, "EXPERIMENT_DIR": str(exp_dir), "RUN_DIR": str(exp_dir / stage),
                "DATA_DIR": str(exp_dir / "data"), "STAGE_STATUS": "dry-run"}
    exp_id = experiment_id(settings, fresh)
    exp_dir = settings.output_root / exp_id
    claim_experiment(settings, exp_dir)
    run_dir = exp_dir / stage
    status = stage_status(settings, run_dir)
    if status == "interrupted" and settings.profile in RESUME_IN_PLACE:
        # open-instruct resumes from the states in its output folder (finetune: step_*; grpo_fast:
        # --checkpoint_state_dir), so the folder stays; run_stage keeps the old manifest beside the new one.
        log(f"{stage}: an earlier attempt did not finish; resuming it in {run_dir}")
        status = "resume"
    elif status == "interrupted":
        # Never delete an earlier attempt: move it aside, say where, and start the stage again.
        aside = exp_dir / f"{stage}.interrupted-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%d-%H%M%S')}"
        run_dir.rename(aside)
        log(f"{stage}: an earlier attempt did not finish; kept it as {aside} and starting again")
        status = "new"
    data_prep.prepare(settings.shared, exp_dir / "data", log=log)
    return {"EXPERIMENT_ID": exp_id, "EXPERIMENT_DIR": str(exp_dir), "RUN_DIR": str(run_dir),
            "DATA_DIR": str(exp_dir / "data"), "STAGE_STATUS": status}


# ----------------------------------------------------------------------------------------------
# Recording a run


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", "-C", str(settings_mod.REPO_ROOT), *args], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _packages() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def _gpus() -> list[str]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


_STEP_DIR = re.compile(r"^step_(\d+)$")


def find_model_folder(run_dir: Path) -> Path | None:
    """The final model folder, found by its contents (config.json and weights), not by name.

    Intermediate saves do not count: checkpoints/, state/, wandb/, step_N/ and grpo_fast's
    <run>_checkpoints/. When several remain (a resumed GRPO run writes a new timestamped folder), the
    one named model/ wins, else the most recently written.
    """
    candidates = []
    for config in run_dir.rglob("config.json"):
        folder = config.parent
        parts = folder.relative_to(run_dir).parts
        if {"checkpoints", "wandb", "state"} & set(parts) or any(
                p.endswith("_checkpoints") or _STEP_DIR.match(p) for p in parts):
            continue
        if any(folder.glob("*.safetensors")) or any(folder.glob("pytorch_model*.bin")):
            candidates.append(folder)
    named = [c for c in candidates if c.name == "model"]
    if named:
        return sorted(named)[0]
    return max(candidates, key=lambda c: (c / "config.json").stat().st_mtime) if candidates else None


def open_instruct_checkpoints(run_dir: Path, settings: settings_mod.Settings) -> list[dict[str, Any]]:
    """Index the intermediate saves open-instruct wrote under <run_dir>/output.

    finetune.py: <exp_name>/step_N/ training states (accelerate's save_state: DeepSpeed's format on GPUs),
    complete when COMPLETED exists (kind "training_state"; docs/FORMATS.md: turning one into a model folder).
    grpo_fast.py: <exp_name>__<seed>__<time>_checkpoints/step_N/ Hugging Face model folders (kind "hf_model").
    """
    found = []
    for folder in sorted((run_dir / "output").glob("**/step_*")):
        match = _STEP_DIR.match(folder.name)
        if not match or not folder.is_dir():
            continue
        step = int(match.group(1))
        if (folder / "config.json").is_file():
            kind, examples = "hf_model", step * settings.rlvr["prompts_per_step"]
        elif (folder / "COMPLETED").is_file():
            kind, examples = "training_state", step * settings.sft["effective_batch_size"]
        else:
            continue  # unfinished save
        found.append({"step": step, "path": str(folder.relative_to(run_dir)), "examples_seen": examples, "kind": kind})
    return sorted(found, key=lambda c: c["step"])


class _Redactor:
    def __init__(self) -> None:
        self.secrets = [os.environ[k] for k in SECRET_ENV if len(os.environ.get(k, "")) >= 4]

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


PILOT_FIELDS = ("passed", "informative_groups", "mean_reward", "stop_rate", "truncation_rate",
                "mean_response_tokens", "groups_all_correct", "groups_all_wrong", "prompts", "samples", "threshold")


def pilot_summary(run_dir: Path) -> dict[str, Any] | None:
    """The RL pilot's numbers (pilot.json, written before the stage ran), for the report's budget table."""
    path = run_dir / "pilot.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    summary = {k: record.get(k) for k in PILOT_FIELDS}
    summary["threshold"] = (record.get("threshold") or {}).get("min_informative_groups")  # a share, as the others
    return {**summary, "file": path.name}


def compute_record(run_dir: Path, host: dict[str, Any]) -> dict[str, Any]:
    """What trained, for the budget: the trainer's training_device.json (the tiny trainers pick the GPU or
    the CPU at run time), else TRAINING_DEVICE=cpu (open-instruct's CPU launch of the tiny profile), else the
    layout's GPUs per node (NUM_GPUS, from the plan) or the host's."""
    written = run_dir / "training_device.json"
    if written.is_file():
        return {**json.loads(written.read_text()), "source": written.name}
    if os.environ.get("TRAINING_DEVICE") == "cpu":
        return {"device": "cpu", "gpus": 0, "source": "TRAINING_DEVICE"}
    gpus = int(os.environ["NUM_GPUS"]) if os.environ.get("NUM_GPUS", "").isdigit() else len(host["gpus"])
    return {"device": "cuda" if gpus else "cpu", "gpus": gpus, "source": "NUM_GPUS" if os.environ.get("NUM_GPUS") else "host"}


def _poll_snapshots(watcher: "snapshots.Watcher", stop: threading.Event) -> None:
    interval = float(os.environ.get("SNAPSHOT_POLL_SECONDS", "30"))
    while not stop.wait(interval):
        try:
            watcher.poll()
        except (OSError, UserError) as error:  # never stop training for a snapshot; the final pass retries
            print(f"snapshots: {error}", file=sys.stderr)


def write_command_script(path: Path, command: list[str], env: dict[str, str], wandb_env: dict[str, str],
                         redact: _Redactor, manifest: dict[str, Any]) -> None:
    """<run folder>/command.sh: the exact command, one flag per line, with the environment it ran in."""
    recorded = {name: redact(value) for name, value in env.items()
                if name not in SECRET_ENV and (name in wandb_env or name in COMMAND_ENV
                                               or name.startswith(COMMAND_ENV_PREFIXES))}
    header = [f"Stage {manifest['stage']} of experiment {manifest['experiment_id']}, launched {manifest['started_at']}",
              f"from {settings_mod.REPO_ROOT} at commit {manifest['repo_commit'] or 'unknown'}"
              + (" (uncommitted changes)" if manifest["repo_dirty"] else "") + ".",
              "The exact command the launcher ran (manifest.json has it as a list), with the environment it added.",
              "Rerunning it by hand bypasses the launcher's checks and run-folder bookkeeping: prefer the launcher."]
    atomic.write_text(path, shell_command.script([redact(arg) for arg in command], recorded, header))
    path.chmod(0o755)


def run_stage(run_dir: Path, command: list[str], watcher: "snapshots.Watcher | None" = None) -> int:
    """Run `command` as stage `run_dir.name`, recording the manifest before and after; returns its exit code.

    With a snapshot watcher (the SFT stage on the open-instruct path), finetune.py's training states are
    converted to model folders and pruned while it trains, and once more when it has finished."""
    exp_dir = run_dir.parent
    owner = json.loads((exp_dir / "experiment.json").read_text())
    settings = settings_mod.load(owner["profile"])
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = (run_dir / ".lock").open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UserError(f"{run_dir} is being written by another launch; wait for it or stop it first") from None
    previous = run_dir / "manifest.json"
    if previous.is_file():  # a resumed attempt: keep its record
        earlier = json.loads(previous.read_text())
        previous.rename(run_dir / f"manifest.attempt-{earlier.get('started_at', 'unknown').replace(':', '')}.json")
    redact = _Redactor()
    wandb_env, wandb_info = tracking.wandb_env(settings, owner["experiment_id"], run_dir.name, run_dir)
    manifest: dict[str, Any] = {
        "format": contract.MANIFEST.id, "version": contract.MANIFEST.version,
        "experiment_id": owner["experiment_id"], "stage": run_dir.name, "profile": settings.profile,
        "settings": settings.as_dict(),
        "settings_fingerprints": {part: settings.fingerprint(part) for part in ("shared", "sft", "rlvr", "eval")},
        "command": [redact(arg) for arg in command],
        "command_line": redact(shlex.join(command)),
        "repo_commit": _git("rev-parse", "HEAD"), "repo_dirty": bool(_git("status", "--porcelain")),
        "open_instruct_commit": os.environ.get("OPEN_INSTRUCT_COMMIT"),
        "packages": _packages(),
        "data": json.loads((exp_dir / "data" / "manifest.json").read_text()),
        "host": {"python": platform.python_version(), "platform": platform.platform(), "gpus": _gpus(),
                 "num_nodes": int(os.environ.get("NUM_NODES") or 1)},  # GPU-hours = gpus x nodes x wall-clock
        "started_at": utc_now(), "ended_at": None, "status": "running", "exit_status": None,
        "wandb": wandb_info, "final_model": None, "checkpoints": [], "log": "train.log",
        "command_file": "command.sh",
    }
    atomic.write_json(run_dir / "manifest.json", manifest)
    env = {**os.environ, **wandb_env}
    write_command_script(run_dir / "command.sh", command, env, wandb_env, redact, manifest)
    with (run_dir / "train.log").open("a", encoding="utf-8") as log:
        try:
            process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, errors="replace", bufsize=1)
        except OSError as error:
            raise UserError(f"cannot start {command[0]}: {error.strerror}; is it installed?") from None
        stop = threading.Event()
        polling = threading.Thread(target=_poll_snapshots, args=(watcher, stop), daemon=True) if watcher else None
        if polling:
            polling.start()
        for line in process.stdout:
            line = redact(line)
            sys.stdout.write(line)
            log.write(line)
        code = process.wait()
        if polling:
            stop.set()
            polling.join()
            watcher.poll(training_done=code == 0)  # a failed run keeps its latest state for the relaunch
    manifest.update(ended_at=utc_now(), exit_status=code, status="completed" if code == 0 else "failed")
    model = find_model_folder(run_dir)
    manifest["final_model"] = str(model.relative_to(run_dir)) if model else None
    index = run_dir / "checkpoints.json"
    if watcher:
        manifest["checkpoints"] = watcher.entries(settings.sft["effective_batch_size"])
    else:
        manifest["checkpoints"] = json.loads(index.read_text()) if index.is_file() else open_instruct_checkpoints(
            run_dir, settings)
    manifest["wandb"] = tracking.finish_info(wandb_info, run_dir)
    manifest["compute"] = compute_record(run_dir, manifest["host"])
    manifest["pilot"] = pilot_summary(run_dir)
    if code == 0 and model is None:
        manifest["status"] = "failed"
        print(f"error: {run_dir.name} exited 0 but wrote no model folder (config.json + weights) under {run_dir}",
              file=sys.stderr)
        code = 1
    atomic.write_json(run_dir / "manifest.json", manifest)
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()
    return code


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sft_vs_rlvr.runs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    begin = sub.add_parser("begin")
    begin.add_argument("stage", choices=contract.ARMS)
    begin.add_argument("--profile", default=os.environ.get("PROFILE", "llama8b"))
    begin.add_argument("--fresh", action="store_true")
    begin.add_argument("--dry-run", action="store_true", help="work out the paths only; write nothing")
    run = sub.add_parser("run")
    run.add_argument("--run-dir", required=True)
    run.add_argument("--snapshots", help="finetune.py's output folder: convert its states to model folders and "
                                         "prune them as it trains (launch/snapshots.py)")
    run.add_argument("--snapshot-config", help="with --snapshots: the base model, for the config")
    run.add_argument("--snapshot-tokenizer", help="with --snapshots: the tokenizer the stage trains with")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    where = sub.add_parser("locate")
    where.add_argument("--profile", default=os.environ.get("PROFILE", "llama8b"))
    init = sub.add_parser("init-model")
    init.add_argument("--from", dest="source", choices=["sft"], required=True)
    init.add_argument("--dry-run", action="store_true", help="the expected folder when the stage has not finished")
    init.add_argument("--profile", default=os.environ.get("PROFILE", "llama8b"))
    args = parser.parse_args(argv)

    if args.command == "run":
        command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not command:
            raise UserError("runs run needs a command after --")
        watcher = None
        if args.snapshots:
            settings = settings_mod.load(json.loads((Path(args.run_dir).parent / "experiment.json").read_text())["profile"])
            bin_dir = os.environ.get("OPEN_INSTRUCT_BIN")
            python = str(Path(bin_dir) / "python") if bin_dir and (Path(bin_dir) / "python").is_file() else sys.executable
            converter = snapshots.converter_command(python, args.snapshot_config, args.snapshot_tokenizer,
                                                    settings.shared["chat_template"], settings.shared["add_bos"])
            watcher = snapshots.Watcher(Path(args.snapshots), Path(args.run_dir), converter,
                                        settle_seconds=float(os.environ.get("SNAPSHOT_SETTLE_SECONDS", "30")),
                                        log=lambda message: print(message, file=sys.stderr))
        return run_stage(Path(args.run_dir), command, watcher)
    settings = settings_mod.load(args.profile)
    if args.command == "locate":
        print(f"export EXPERIMENT_DIR={shlex.quote(str(locate(settings)))}")
        return 0
    if args.command == "init-model":
        print(f"export INIT_MODEL={shlex.quote(str(finished_model(settings, args.source, args.dry_run)))}")
        return 0
    variables = begin_stage(settings, args.stage, args.fresh, log=lambda m: print(m, file=sys.stderr),
                            dry_run=args.dry_run)
    print("".join(f"export {k}={shlex.quote(v)}\n" for k, v in variables.items()), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

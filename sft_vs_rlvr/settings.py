"""Settings: read configs/*.toml, check every key, resolve one profile.

Files (TOML, read with the standard library's tomllib):
  experiment.toml  [shared] + [profile.<name>]  what both arms share (DESIGN.md, contract rule 1)
  sft.toml         [<profile>]                  SFT arm hyperparameters
  rlvr.toml        [<profile>]                  RLVR arm hyperparameters
  eval.toml        [<profile>]                  evaluation settings

Every key is required and typed; an unknown key is an error with a "did you mean" hint, so a
misspelling can never fall back to a silent default.

Command line (used by the bash launchers):
  python -m sft_vs_rlvr.settings show   --profile P           resolved settings as JSON
  python -m sft_vs_rlvr.settings export --profile P           shell `export` lines (eval-able)
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import shlex
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sft_vs_rlvr.errors import UserError, cli

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_DIR = REPO_ROOT / "configs"

SHARED_KEYS: dict[str, type] = {
    "seed": int,
    "wandb_project": str,
    "output_root": str,
    "chat_template": str,
    "instruction": str,
    "verifier": str,
    "stop_strings": list,
}
PROFILE_KEYS: dict[str, type] = {
    "base_model": str,
    "dataset": str,
    "train_size": int,
    "test_size": int,
    "max_prompt_length": int,
    "max_response_length": int,
    "add_bos": bool,
}
ARM_KEYS: dict[str, dict[str, type]] = {
    "sft": {
        "learning_rate": float,
        "epochs": int,
        "max_per_device_batch_size": int,
        "effective_batch_size": int,
        "warmup_ratio": float,
        "checkpoints": int,
    },
    "rlvr": {
        "learning_rate": float,
        "epochs": int,
        "prompts_per_step": int,
        "samples_per_prompt": int,
        "beta": float,
        "temperature": float,
        "checkpoints": int,
        "pilot_prompts": int,
        "pilot_min_informative_groups": float,
    },
    "eval": {
        "engine": str,
        "batch_size": int,
        "limit": int,
        "samples": int,
        "temperature": float,
        "top_p": float,
        "checkpoints": bool,
        "reference": bool,
        "reference_limit": int,
        "reference_max_length": int,
        "ood_sets": list,
        "headline_grader": str,
    },
}
# Keys whose value must lie in a closed range.
RANGES: dict[str, tuple[float, float]] = {"pilot_min_informative_groups": (0.0, 1.0)}
# Values a key may take, where the code only implements some.
CHOICES: dict[str, tuple[str, ...]] = {
    "chat_template": ("tulu",),
    "verifier": ("gsm8k",),
    "engine": ("auto", "transformers", "vllm"),
    "headline_grader": ("robust", "verifier"),
}


@dataclass(frozen=True)
class Settings:
    profile: str
    shared: dict[str, Any]  # [shared] + [profile.<name>] of experiment.toml
    sft: dict[str, Any]
    rlvr: dict[str, Any]
    eval: dict[str, Any]
    config_dir: Path

    def as_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "shared": self.shared, "sft": self.sft, "rlvr": self.rlvr, "eval": self.eval}

    def fingerprint(self, part: str = "shared") -> str:
        """sha256 of one part's canonical JSON: what decides whether two runs belong together."""
        value = self.as_dict()[part]
        return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def output_root(self) -> Path:
        root = Path(os.environ.get("OUTPUT_ROOT") or self.shared["output_root"])
        return root if root.is_absolute() else REPO_ROOT / root


def _load_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"settings file {path} is missing; restore it from git (git checkout -- {path.name})")
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path}: not valid TOML ({error}); fix the line it names") from None


def _check_section(values: Any, schema: dict[str, type], where: str) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise UserError(f"{where} must be a table of keys; see the other sections of that file")
    for key in values:
        if key not in schema:
            hint = difflib.get_close_matches(key, schema, n=1)
            fix = f"did you mean '{hint[0]}'?" if hint else f"known keys: {', '.join(sorted(schema))}"
            raise UserError(f"{where}: unknown key '{key}' ({fix})")
    out: dict[str, Any] = {}
    for key, kind in schema.items():
        if key not in values:
            raise UserError(f"{where}: missing key '{key}'; add it ({kind.__name__})")
        value = values[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise UserError(f"{where}: '{key}' must be {kind.__name__}, got {value!r}")
        if key == "stop_strings":
            _check_stop_strings(value, where)
        if key in RANGES and not RANGES[key][0] <= value <= RANGES[key][1]:
            raise UserError(f"{where}: '{key}' = {value!r} must be between {RANGES[key][0]} and {RANGES[key][1]}")
        if key in CHOICES and value not in CHOICES[key]:
            raise UserError(f"{where}: '{key}' = {value!r} is not supported; choose one of {', '.join(CHOICES[key])}")
        out[key] = value
    return out


def _check_stop_strings(values: list, where: str) -> None:
    """Non-empty strings without digits: the GSM8K verifier reads the last number, so a stop string must hold none."""
    for value in values:
        if not isinstance(value, str) or not value or "\n" in value:
            raise UserError(f"{where}: stop_strings must be non-empty one-line strings, got {value!r}")
        if any(ch.isdigit() for ch in value):
            raise UserError(f"{where}: stop string {value!r} holds a digit, which the GSM8K verifier could read as "
                            "the answer; use stop strings without digits")


def known_profiles(config_dir: Path | None = None) -> list[str]:
    config_dir = Path(config_dir or os.environ.get("CONFIG_DIR") or DEFAULT_CONFIG_DIR)
    return sorted(_load_toml(config_dir / "experiment.toml").get("profile", {}))


def load(profile: str, config_dir: str | os.PathLike | None = None) -> Settings:
    config_dir = Path(config_dir or os.environ.get("CONFIG_DIR") or DEFAULT_CONFIG_DIR)
    experiment = _load_toml(config_dir / "experiment.toml")
    for top in experiment:
        if top not in ("shared", "profile"):
            raise UserError(f"{config_dir / 'experiment.toml'}: unknown section [{top}] (expected [shared] and [profile.<name>])")
    profiles = experiment.get("profile", {})
    if profile not in profiles:
        raise UserError(
            f"unknown profile '{profile}'; choose one of {', '.join(sorted(profiles))} (PROFILE=... or --profile)"
        )
    shared = _check_section(experiment.get("shared", {}), SHARED_KEYS, f"{config_dir / 'experiment.toml'} [shared]")
    shared.update(
        _check_section(profiles[profile], PROFILE_KEYS, f"{config_dir / 'experiment.toml'} [profile.{profile}]")
    )
    if os.environ.get("SEED"):  # another seed of the same experiment without editing experiment.toml
        if not os.environ["SEED"].isdigit():
            raise UserError(f"SEED={os.environ['SEED']!r} is not a whole number; set e.g. SEED=43, or unset it")
        shared["seed"] = int(os.environ["SEED"])
    arms: dict[str, dict[str, Any]] = {}
    for arm, schema in ARM_KEYS.items():
        path = config_dir / f"{arm}.toml"
        table = _load_toml(path)
        if profile not in table:
            raise UserError(f"{path} has no [{profile}] section; add one (copy another profile's and adjust)")
        arms[arm] = _check_section(table[profile], schema, f"{path} [{profile}]")
    return Settings(profile=profile, shared=shared, config_dir=config_dir, **arms)


def _shell_value(value: Any) -> str:
    """Lists one item per line (bash: mapfile -t items <<<"$NAME"); booleans as true/false; the rest as text."""
    if isinstance(value, list):
        return "\n".join(str(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def shell_exports(settings: Settings) -> str:
    """`export NAME=value` lines: shared keys as-is (SEED, BASE_MODEL, ...), arm keys prefixed (SFT_EPOCHS, ...)."""
    lines = [f"export PROFILE={shlex.quote(settings.profile)}"]
    for key, value in settings.shared.items():
        if key == "output_root":  # resolved: the OUTPUT_ROOT environment variable wins over the file
            value = settings.output_root
        lines.append(f"export {key.upper()}={shlex.quote(_shell_value(value))}")
    for arm in ARM_KEYS:
        for key, value in getattr(settings, arm).items():
            lines.append(f"export {arm.upper()}_{key.upper()}={shlex.quote(_shell_value(value))}")
    return "\n".join(lines) + "\n"


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sft_vs_rlvr.settings", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["show", "export", "profiles"])
    parser.add_argument("--profile", default=os.environ.get("PROFILE", "llama8b"))
    parser.add_argument("--config-dir", default=None)
    args = parser.parse_args(argv)
    if args.command == "profiles":
        print("\n".join(known_profiles(args.config_dir)))
        return 0
    settings = load(args.profile, args.config_dir)
    if args.command == "show":
        print(json.dumps(settings.as_dict(), indent=2))
    else:
        sys.stdout.write(shell_exports(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())

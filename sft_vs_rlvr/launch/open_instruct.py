"""Where open-instruct lives and which revision the project is pinned to.

The GPU path runs allenai/open-instruct at release tag v0.3.0. `make setup-gpu` clones it into a
cache folder outside this repository (never vendored). Tests that compare against its source
read it from that checkout, or from a bare git mirror named by OPEN_INSTRUCT_GIT_DIR; without
either they skip.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

from sft_vs_rlvr import contract
from sft_vs_rlvr.cache import cache_root
from sft_vs_rlvr.errors import UserError, cli


def checkout_dir() -> Path:
    """OPEN_INSTRUCT_DIR, else <cache>/open-instruct (the cache of tiny_model.cache_root)."""
    if os.environ.get("OPEN_INSTRUCT_DIR"):
        return Path(os.environ["OPEN_INSTRUCT_DIR"])
    return cache_root() / "open-instruct"


def venv_dir() -> Path:
    """open-instruct's own environment: OPEN_INSTRUCT_VENV, else <checkout>/.venv (what its uv sync makes)."""
    if os.environ.get("OPEN_INSTRUCT_VENV"):
        return Path(os.environ["OPEN_INSTRUCT_VENV"])
    return checkout_dir() / ".venv"


def python() -> Path:
    return venv_dir() / "bin" / "python"


def environment() -> dict[str, str]:
    """Environment for running open-instruct code of the checkout with this package importable beside it."""
    from sft_vs_rlvr.settings import REPO_ROOT

    paths = [str(REPO_ROOT), str(checkout_dir()), os.environ.get("PYTHONPATH", "")]
    # litellm (imported by open-instruct) otherwise tries to fetch a price list from the network at import.
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def check(environment_too: bool = True) -> str:
    """Refuse a missing checkout, one at another commit, or one without its environment; say what was found."""
    path = checkout_dir()
    if not (path / "open_instruct" / "finetune.py").is_file():
        raise UserError(f"open-instruct is not installed at {path}; run 'make setup-gpu' (or set OPEN_INSTRUCT_DIR)")
    head = checkout_commit(path)
    if head != contract.OPEN_INSTRUCT_COMMIT:
        raise UserError(f"open-instruct at {path} is at {head or 'an unknown commit'}, not the pinned {contract.OPEN_INSTRUCT_TAG} "
                        f"({contract.OPEN_INSTRUCT_COMMIT[:9]}); run 'git -C {path} checkout {contract.OPEN_INSTRUCT_TAG}' or 'make setup-gpu'")
    if environment_too and not python().is_file():
        raise UserError(f"open-instruct's environment is missing ({venv_dir()}); run 'make setup-gpu'")
    return f"open-instruct: {path} at {contract.OPEN_INSTRUCT_TAG} ({contract.OPEN_INSTRUCT_COMMIT[:9]}), environment {venv_dir()}"


def _git(git_dir: Path, *args: str) -> str | None:
    try:
        return subprocess.run(["git", "--git-dir", str(git_dir), *args], capture_output=True, text=True,
                              check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def checkout_commit(path: Path | None = None) -> str | None:
    """HEAD commit of the checkout, or None where there is none."""
    path = path or checkout_dir()
    head = _git(path / ".git", "rev-parse", "HEAD") if (path / ".git").exists() else None
    return head.strip() if head else None


def read_source(relative_path: str) -> str | None:
    """A file of open-instruct at the pinned commit, from the checkout or OPEN_INSTRUCT_GIT_DIR; else None."""
    candidates = []
    if os.environ.get("OPEN_INSTRUCT_GIT_DIR"):
        candidates.append(Path(os.environ["OPEN_INSTRUCT_GIT_DIR"]))
    if (checkout_dir() / ".git").exists():
        candidates.append(checkout_dir() / ".git")
    for git_dir in candidates:
        text = _git(git_dir, "show", f"{contract.OPEN_INSTRUCT_COMMIT}:{relative_path}")
        if text is not None:
            return text
    return None



@cli
def main(argv: list[str] | None = None) -> int:
    """`python -m sft_vs_rlvr.launch.open_instruct {export,check}`: where the checkout is; whether it is usable.

    export  prints OPEN_INSTRUCT_DIR, OPEN_INSTRUCT_BIN (its environment's bin folder), OPEN_INSTRUCT_COMMIT,
            OPEN_INSTRUCT_TAG and OPEN_INSTRUCT_URL (the clone URL: $OPEN_INSTRUCT_URL, else GitHub)
    check   refuses a missing checkout, one at another commit or one without its environment, naming the fix
    """
    parser = argparse.ArgumentParser(prog="python -m sft_vs_rlvr.launch.open_instruct", description=main.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["export", "check"])
    parser.add_argument("--checkout-only", action="store_true", help="check: do not require the environment yet")
    args = parser.parse_args(argv)
    if args.command == "export":
        print(f"export OPEN_INSTRUCT_DIR={shlex.quote(str(checkout_dir()))}\n"
              f"export OPEN_INSTRUCT_BIN={shlex.quote(str(venv_dir() / 'bin'))}\n"
              f"export OPEN_INSTRUCT_COMMIT={contract.OPEN_INSTRUCT_COMMIT}\n"
              f"export OPEN_INSTRUCT_TAG={contract.OPEN_INSTRUCT_TAG}\n"
              f"export OPEN_INSTRUCT_URL={shlex.quote(os.environ.get('OPEN_INSTRUCT_URL') or contract.OPEN_INSTRUCT_URL)}")
        return 0
    print(check(environment_too=not args.checkout_only), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

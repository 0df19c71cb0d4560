"""A launch command as a researcher reads it: one flag per line, and a shell-pastable command.sh.

open-instruct's own scripts/ write their commands one flag per line with backslash continuations; `--dry-run`
prints the launchers' commands the same way, and every launch writes the exact command it ran as
<run folder>/command.sh beside its manifest (runs.py), with the environment the runner added.

Lines: the program (and `launch` for accelerate) first; then every option starts a line with its values;
a script path (*.py) gets a line of its own, so the accelerate part and the trainer part stay apart. Every
token is shell-quoted, so pasting the text into bash gives back exactly the same argument list.

  python -m sft_vs_rlvr.shell_command show -- COMMAND...   prints COMMAND that way
"""

from __future__ import annotations

import re
import shlex
import sys

from sft_vs_rlvr.errors import UserError, cli

_NEGATIVE_NUMBER = re.compile(r"^-\d")


def _starts_line(token: str) -> bool:
    is_option = token.startswith("-") and not _NEGATIVE_NUMBER.match(token)
    return is_option or token.endswith(".py")


def flag_lines(argv: list[str]) -> list[list[str]]:
    """The command's tokens grouped one option (with its values) per line."""
    lines: list[list[str]] = []
    for token in argv:
        if not lines or _starts_line(token):
            lines.append([token])
        else:
            lines[-1].append(token)
    return lines


def render(argv: list[str]) -> str:
    """One option per line, shell-quoted, joined by backslash continuations; ends with a newline."""
    return " \\\n  ".join(" ".join(shlex.quote(token) for token in line) for line in flag_lines(argv)) + "\n"


def script(argv: list[str], env: dict[str, str], header: list[str]) -> str:
    """The text of command.sh: comment lines, the environment as exports, the command."""
    comments = "".join(f"# {line}\n" for line in header)
    exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in sorted(env.items()))
    return f"#!/usr/bin/env bash\n{comments}set -euo pipefail\n{exports}{render(argv)}"


@cli
def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] != ["show"]:
        raise UserError("usage: python -m sft_vs_rlvr.shell_command show -- COMMAND...")
    command = args[2:] if args[1:2] == ["--"] else args[1:]
    if not command:
        raise UserError("shell_command show needs a command after --")
    sys.stdout.write(render(command))
    return 0


if __name__ == "__main__":
    sys.exit(main())

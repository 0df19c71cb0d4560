"""User-facing errors: one line naming the problem and the fix, then a non-zero exit."""

from __future__ import annotations

import functools
import sys
from typing import Callable


class UserError(Exception):
    """A problem the user can fix. str(error) is the whole message, problem first, then the fix."""


EXIT_USER_ERROR = 2


def cli(main: Callable[..., int | None]) -> Callable[..., int]:
    """Turn UserError into one line on stderr and exit status 2; everything else stays a traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs) or 0
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USER_ERROR

    return wrapper

"""The project's cache folder, outside the repository: the tiny base model and the open-instruct checkout.

$SFT_VS_RLVR_CACHE, else $XDG_CACHE_HOME/sft-vs-rlvr, else ~/.cache/sft-vs-rlvr. Standard library
only, so set-up scripts can ask for it before any package is installed.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    if os.environ.get("SFT_VS_RLVR_CACHE"):
        return Path(os.environ["SFT_VS_RLVR_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sft-vs-rlvr"

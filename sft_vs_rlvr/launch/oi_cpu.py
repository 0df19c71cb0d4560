"""Run an open-instruct script on a machine without CUDA: `python -m sft_vs_rlvr.launch.oi_cpu SCRIPT ARGS...`.

finetune.py at v0.3.0 logs `torch.cuda.max_memory_reserved/max_memory_allocated(device=torch.cuda.current_device())`
with every metrics line (finetune.py:903-904); on a CPU-only torch that raises "Torch not compiled with CUDA
enabled" at the first log. Only when CUDA is unavailable, those three calls return 0 (so reserved_mem_GiB and
allocated_mem_GiB log as 0.0); then SCRIPT runs as `python SCRIPT ARGS...` would run it (its folder first on
sys.path, run_name "__main__"). With CUDA, nothing is changed. Standard library only at import.

Launch it through accelerate as the GPU launcher launches finetune.py, e.g.
    accelerate launch --cpu --num_processes 1 --num_cpu_threads_per_process 1 --mixed_precision no \
        -m sft_vs_rlvr.launch.oi_cpu <checkout>/open_instruct/finetune.py ARGS...
with <repo>:<checkout> on PYTHONPATH.
"""

from __future__ import annotations

import os
import runpy
import sys


def zero_cuda_memory_stats() -> bool:
    """Make the CUDA memory-statistics calls harmless where CUDA is absent; True when patched."""
    import torch

    if torch.cuda.is_available():
        return False
    torch.cuda.current_device = lambda: 0
    torch.cuda.max_memory_reserved = lambda device=None: 0
    torch.cuda.max_memory_allocated = lambda device=None: 0
    return True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    script = os.path.abspath(argv[0])
    zero_cuda_memory_stats()
    sys.argv = [script, *argv[1:]]
    sys.path.insert(0, os.path.dirname(script))  # as `python SCRIPT` puts the script's folder first
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

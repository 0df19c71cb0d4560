#!/usr/bin/env python3
"""Write the SFT-vs-RLVR report of the current experiment.

Reads only the evaluation outputs (<experiment>/eval/*_results.json and *_samples.jsonl), the stage
manifests (<experiment>/{sft,rlvr}/manifest.json) and the W&B runs they name (offline run folders
read directly; the W&B API for runs logged online). Writes <experiment>/report/report.md,
report.html (figures embedded, readable offline) and report.json (every number shown), and prints
the path of report.md last.

Usage: python analyze_results.py [--experiment-dir DIR] [--out DIR] [--weights [--rank-sample K]]

--weights first compares the weights of every finished arm with the base model, tensor by tensor
(sft_vs_rlvr/weight_diff.py: relative update norms, update sparsity and overlap, effective rank, cosine
between the arms' updates), writes <experiment>/weights/weight_diff.json, and the report gains that
section. Streams one tensor at a time (well under 4 GB for an 8B model); on CPU an 8B comparison of
all spectra takes hours: --rank-sample 8 decomposes every 8th layer only.

Environment: PROFILE (llama8b by default, or tiny), EXPERIMENT_ID, OUTPUT_ROOT, CONFIG_DIR: which
experiment to read, as for the launchers. --experiment-dir overrides them.
"""

import argparse
import os
import sys

from sft_vs_rlvr import report, runs, settings, weights
from sft_vs_rlvr.errors import cli


@cli
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python analyze_results.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment-dir", help="experiment folder (default: the current one of PROFILE)")
    parser.add_argument("--out", help="report folder (default: <experiment>/report)")
    parser.add_argument("--weights", action="store_true", help="compare the arms' weights with the base first")
    parser.add_argument("--rank-sample", type=int, default=None,
                        help="with --weights: singular values for every K-th layer only (default: all)")
    args = parser.parse_args(argv)
    experiment_dir = args.experiment_dir or str(runs.locate(settings.load(os.environ.get("PROFILE", "llama8b"))))
    if args.weights:
        weights.run(experiment_dir, rank_sample=args.rank_sample)
    forwarded = ["--experiment-dir", experiment_dir] + (["--out", args.out] if args.out else [])
    return report.main(forwarded)


if __name__ == "__main__":
    sys.exit(main())

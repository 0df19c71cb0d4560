#!/usr/bin/env python3
"""Write the SFT-vs-RLVR report of the current experiment (or of several seeds of it).

Reads only the evaluation outputs (<experiment>/eval/: results, per-sample files, checkpoints, OOD sets,
the reference protocol), the stage manifests (<experiment>/{sft,rlvr,sft_rlvr}/manifest.json) and the W&B
runs they name (run files read directly; the W&B API for runs logged online without a local copy).
Writes <experiment>/report/report.md, report.html (figures embedded, readable offline) and report.json
(every number shown), and prints the path of report.md last.

Usage: python analyze_results.py [--experiment-dir DIR ...] [--seeds 42,43,44] [--out DIR]
                                 [--target-accuracy X] [--weights [--rank-sample K]]

Several seeds: run each stage with SEED=<n> (each seed is its own experiment folder <profile>-seed<n>),
then pass them all, with --seeds (folders found under the output root) or one --experiment-dir per seed.
Every number becomes mean and spread across seeds, and the headline test treats seeds as replicates;
the report goes to <output_root>/report-seeds-<s1>-<s2>-.../ unless --out says otherwise.

--target-accuracy X: sample efficiency counts the examples each arm needed to reach accuracy X (a share,
e.g. 0.5); by default the midpoint between the base model and the best final arm.

--weights first compares the weights of every finished arm with the base model, tensor by tensor
(sft_vs_rlvr/weights/diff.py: relative update norms, update sparsity and overlap, effective rank, cosine
between the arms' updates), writes <experiment>/weights/weight_diff.json, and the report gains that
section. Streams one tensor at a time (well under 4 GB for an 8B model); on CPU an 8B comparison of
all spectra takes hours: --rank-sample 8 decomposes every 8th layer only.

Environment: PROFILE (llama8b by default, or tiny), EXPERIMENT_ID, OUTPUT_ROOT, CONFIG_DIR: which
experiment to read, as for the launchers. --experiment-dir and --seeds override them.
"""

import argparse
import os
import sys

from sft_vs_rlvr import runs, settings
from sft_vs_rlvr.errors import cli
from sft_vs_rlvr.report import analysis as report
from sft_vs_rlvr.weights import compare_arms as weights


@cli
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python analyze_results.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment-dir", action="append",
                        help="experiment folder (default: the current one of PROFILE); repeat for several seeds")
    parser.add_argument("--seeds", help="comma-separated seeds of PROFILE's experiment, e.g. 42,43,44")
    parser.add_argument("--out", help="report folder (default: <experiment>/report)")
    parser.add_argument("--target-accuracy", type=float, default=None,
                        help="sample efficiency target accuracy, a share (default: midway between base and best arm)")
    parser.add_argument("--weights", action="store_true", help="compare the arms' weights with the base first")
    parser.add_argument("--rank-sample", type=int, default=None,
                        help="with --weights: singular values for every K-th layer only (default: all)")
    args = parser.parse_args(argv)
    profile = settings.load(os.environ.get("PROFILE", "llama8b"))
    if args.seeds and args.experiment_dir:
        parser.error("give --seeds or --experiment-dir, not both")
    if args.seeds:
        dirs = [str(path) for path in runs.seed_folders(profile, args.seeds)]
    else:
        dirs = args.experiment_dir or [str(runs.locate(profile))]
    if args.weights:
        for experiment_dir in dirs:
            weights.run(experiment_dir, rank_sample=args.rank_sample)
    forwarded = [arg for d in dirs for arg in ("--experiment-dir", d)]
    forwarded += (["--out", args.out] if args.out else [])
    forwarded += (["--target-accuracy", str(args.target_accuracy)] if args.target_accuracy is not None else [])
    return report.main(forwarded)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Benchmark of the issue's bounds: `make demo` from a fresh clone (installation included) and the
# four stages once the environment exists. Prints wall times; asserts nothing.
#   benchmarks/demo_stages.sh            clone this repository's HEAD into a temporary folder and time it there
# Bounds to compare with (2 CPU cores): four stages <= 3 min with the environment present,
# fresh clone including installation <= 8 min.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone --quiet "$repo" "$work/clone"
cd "$work/clone"
export SFT_VS_RLVR_CACHE="$work/cache"   # a cold model cache too: the first demo builds the tiny model

t0=$SECONDS
make --no-print-directory setup >/dev/null
t_setup=$((SECONDS - t0))
t1=$SECONDS
make --no-print-directory demo | grep -E '^=== .*: [0-9]+ s$|^Report:'
t_demo=$((SECONDS - t1))
t2=$SECONDS
make --no-print-directory demo FRESH=1 | grep -E '^=== .*: [0-9]+ s$'
t_warm=$((SECONDS - t2))
echo "install (make setup):                 ${t_setup} s"
echo "first demo (cold model cache):        ${t_demo} s"
echo "fresh experiment, environment present: ${t_warm} s   (bound: 180 s)"
echo "fresh clone total:                    $((t_setup + t_demo)) s   (bound: 480 s)"

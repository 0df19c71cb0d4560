#!/usr/bin/env bash
# `make demo`: the four user entry points, in order, on the tiny profile; prints each stage's wall
# time and, last, the path of the report. FRESH=1 starts a new experiment.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PROFILE=tiny HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# --fresh goes to the first stage only: it makes the new experiment current, and the later stages follow it.
fresh="${FRESH:-}"
unset FRESH
case "$fresh" in ""|0) fresh="" ;; esac

stage() {
  local name=$1; shift
  local start=$SECONDS
  echo "=== $name"
  "$@"
  echo "=== $name: $((SECONDS - start)) s"
}

stage "SFT"      ./experiment_sft_llama8b.sh ${fresh:+--fresh}
stage "RLVR"     ./experiment_rlvr_llama8b.sh
stage "evaluate" ./evaluate_comparison.sh
start=$SECONDS
echo "=== analyze"
report="$(python analyze_results.py --weights)"
echo "=== analyze: $((SECONDS - start)) s"
echo "Report: ${report##*$'\n'}"

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

# SEEDS=42,43 runs every stage once per seed (SEED=<n>: one experiment folder each) and writes one report
# across the seeds (mean and spread, section 8); by default one seed, the configured one.
seeds="${SEEDS:-}"
unset SEEDS

train_and_evaluate() {
  stage "SFT${SEED:+ (seed $SEED)}"      ./experiment_sft_llama8b.sh ${fresh:+--fresh}
  stage "RLVR${SEED:+ (seed $SEED)}"     ./experiment_rlvr_llama8b.sh
  stage "evaluate${SEED:+ (seed $SEED)}" ./evaluate_comparison.sh
}

analyze_args=(--weights)
if [ -z "$seeds" ]; then
  train_and_evaluate
else
  for seed in ${seeds//,/ }; do
    SEED="$seed" train_and_evaluate
  done
  analyze_args+=(--seeds "$seeds")
fi
start=$SECONDS
echo "=== analyze"
report="$(python analyze_results.py "${analyze_args[@]}")"
echo "=== analyze: $((SECONDS - start)) s"
echo "Report: ${report##*$'\n'}"

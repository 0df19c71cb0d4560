#!/usr/bin/env bash
# Evaluate the base, SFT and RLVR models of the current experiment on the GSM8K test split.
#
# Every model is prompted in the template it trained with (read from its saved tokenizer; the base
# model gets the shared template), greedy, same token budget and stop rule, both graders.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
source scripts/launcher_common.sh

usage() {
  cat <<'USAGE'
Usage: ./evaluate_comparison.sh [--force] [--models base,sft,rlvr,sft_rlvr] [--plan] [--help]

Evaluates every finished model of the current experiment on the test split (never training rows).
A model already evaluated with the same weights and settings is reused.

Options:
  --force           evaluate again even where results are current
  --models LIST     a comma-separated subset of base,sft,rlvr,sft_rlvr (default: all that exist);
                    the arms' intermediate checkpoints are evaluated too (setting `checkpoints`)
  --plan            print the estimated time and cost of evaluating with vLLM on 1 and 4 GPUs, and exit
  --help            this text

Environment:
  PROFILE, EXPERIMENT_ID, OUTPUT_ROOT, CONFIG_DIR   as for the training launchers
  OPEN_INSTRUCT_DIR  the open-instruct checkout (make setup-gpu): where its environment has vLLM, the
                     evaluation runs there (not on the tiny profile)

Reads:  configs/experiment.toml, configs/eval.toml, <experiment>/data/test.jsonl,
        <experiment>/{sft,rlvr}/manifest.json and their model folders
Writes: <experiment>/eval/<model>_results.json and <model>_samples.jsonl for every model and checkpoint
        (<arm>_step<N>), eval/index.json (evaluated, reused, skipped), eval/.partial/ while running
        (a killed evaluation resumes from it); formats in docs/FORMATS.md
USAGE
}

args=()
while (($#)); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --force) args+=(--force) ;;
    --models) [[ $# -ge 2 ]] || die "--models needs a value, e.g. --models base,sft"; args+=(--models "$2"); shift ;;
    --plan) PLAN=1 ;;
    *) die "unknown option '$1'; see $0 --help" ;;
  esac
  shift
done

check_python
PROFILE="${PROFILE:-llama8b}"
if [[ -n "${PLAN:-}" ]]; then exec python -m sft_vs_rlvr.launch.plan show --profile "$PROFILE" --stage eval; fi
load_exports python -m sft_vs_rlvr.runs locate --profile "$PROFILE"
# On a GPU box the evaluator runs in open-instruct's environment, the one that holds vLLM (make setup-gpu installs
# this package and lm-eval into it); the tiny profile, and any machine without that environment, use this one.
evaluator=python
if [[ "$PROFILE" != tiny ]]; then
  load_exports python -m sft_vs_rlvr.launch.open_instruct export   # OPEN_INSTRUCT_BIN
  has_vllm_and_us='import importlib.util as u, sys; sys.exit(not (u.find_spec("vllm") and u.find_spec("sft_vs_rlvr")))'
  if "$OPEN_INSTRUCT_BIN/python" -c "$has_vllm_and_us" 2>/dev/null; then
    evaluator="$OPEN_INSTRUCT_BIN/python"
    echo "eval: evaluating in open-instruct's environment ($evaluator), which has vLLM" >&2
  fi
fi
"$evaluator" -m sft_vs_rlvr.evaluate.driver --experiment-dir "$EXPERIMENT_DIR" "${args[@]}"

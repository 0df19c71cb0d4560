#!/usr/bin/env bash
# The tiny profile's RLVR arm on a CPU: TRL's GRPOTrainer (sft_vs_rlvr/tiny/train.py) with the GSM8K
# verifier as reward. Run by experiment_rlvr_llama8b.sh after its checks, with the variables it exported
# (settings, runs begin, INIT_MODEL).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/launcher_common.sh
# The generation contract (configs/experiment.toml), as the llama8b launchers pass it to open-instruct.
contract=(); mapfile -t stops <<<"$STOP_STRINGS"
for stop in "${stops[@]}"; do contract+=(--stop-string "$stop"); done
[[ "$ADD_BOS" == true ]] && contract+=(--add-bos)
cmd=(python -m sft_vs_rlvr.tiny.train rlvr
  --model "$INIT_MODEL"
  --train-file "$DATA_DIR/rl_train.jsonl"
  --output-dir "$RUN_DIR"
  --seed "$SEED"
  "${contract[@]}"
  --learning-rate "$RLVR_LEARNING_RATE"
  --epochs "$RLVR_EPOCHS"
  --prompts-per-step "$RLVR_PROMPTS_PER_STEP"
  --samples-per-prompt "$RLVR_SAMPLES_PER_PROMPT"
  --max-response-length "$MAX_RESPONSE_LENGTH"
  --beta "$RLVR_BETA"
  --temperature "$RLVR_TEMPERATURE"
  --checkpoints "$RLVR_CHECKPOINTS")
show_command_if_dry_run "${cmd[@]}"
run_stage "${cmd[@]}"

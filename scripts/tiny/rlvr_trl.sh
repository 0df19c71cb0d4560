#!/usr/bin/env bash
# The tiny profile's RLVR arm on a CPU: TRL's GRPOTrainer (sft_vs_rlvr/tiny/train.py) with the GSM8K
# verifier as reward. Run by experiment_rlvr_llama8b.sh after its checks, with the variables it exported
# (settings, runs begin, STAGE and, for INIT_FROM=sft, INIT_MODEL).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/launcher_common.sh
if [[ "$STAGE" == rlvr && -n "$DRY_RUN" ]]; then INIT_MODEL="$(python -m sft_vs_rlvr.tiny.model path)"
elif [[ "$STAGE" == rlvr ]]; then INIT_MODEL="$(python -m sft_vs_rlvr.tiny.model ensure)"; fi
cmd=(python -m sft_vs_rlvr.tiny.train rlvr
  --model "$INIT_MODEL"
  --train-file "$DATA_DIR/rl_train.jsonl"
  --output-dir "$RUN_DIR"
  --seed "$SEED"
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

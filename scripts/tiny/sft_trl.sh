#!/usr/bin/env bash
# The tiny profile's SFT arm on a CPU: TRL's SFTTrainer (sft_vs_rlvr/tiny/train.py) on the tiny model.
# Run by experiment_sft_llama8b.sh after its checks, with the variables it exported (settings, runs begin).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/launcher_common.sh
if [[ -n "$DRY_RUN" ]]; then BASE_MODEL_PATH="$(python -m sft_vs_rlvr.tiny.model path)"
else BASE_MODEL_PATH="$(python -m sft_vs_rlvr.tiny.model ensure)"; fi
# The generation contract (configs/experiment.toml), as the llama8b launchers pass it to open-instruct.
contract=(); mapfile -t stops <<<"$STOP_STRINGS"
for stop in "${stops[@]}"; do contract+=(--stop-string "$stop"); done
[[ "$ADD_BOS" == true ]] && contract+=(--add-bos)
cmd=(python -m sft_vs_rlvr.tiny.train sft
  --model "$BASE_MODEL_PATH"
  --train-file "$DATA_DIR/sft_train.jsonl"
  --output-dir "$RUN_DIR"
  --seed "$SEED"
  "${contract[@]}"
  --learning-rate "$SFT_LEARNING_RATE"
  --epochs "$SFT_EPOCHS"
  --per-device-batch-size "$SFT_PER_DEVICE_BATCH_SIZE"
  --gradient-accumulation-steps "$SFT_GRADIENT_ACCUMULATION_STEPS"
  --warmup-ratio "$SFT_WARMUP_RATIO"
  --max-seq-length "$((MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH))"
  --checkpoints "$SFT_CHECKPOINTS")
show_command_if_dry_run "${cmd[@]}"
run_stage "${cmd[@]}"

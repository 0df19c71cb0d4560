#!/usr/bin/env bash
# SFT arm of the SFT-vs-RLVR experiment.
#
# PROFILE=llama8b (default): Llama 3.1 8B on GSM8K through open-instruct's finetune.py
#                            (accelerate + DeepSpeed), on a GPU box.
# PROFILE=tiny:              the same experiment in miniature on a CPU (a tiny Llama built offline,
#                            generated GSM8K-style data, TRL's SFTTrainer), for demos and CI.
#
# Shared settings (model, seed, data, template, lengths, W&B project) come from configs/experiment.toml,
# the SFT hyperparameters from configs/sft.toml; run folders are described in docs/FORMATS.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
source scripts/launcher_common.sh

usage() {
  cat <<'USAGE'
Usage: ./experiment_sft_llama8b.sh [--fresh] [--dry-run] [--help]

Trains the SFT arm: the gold GSM8K solutions of the training questions, under the shared prompt
template, seed 42. A finished run is not redone; an interrupted one is kept aside and restarted.

Options:
  --fresh     start a new experiment id (the old run folders are left alone)
  --dry-run   print the exact command, one line, shell-quoted, and exit; writes nothing
  --help      this text

Environment:
  PROFILE         llama8b (default) or tiny
  EXPERIMENT_ID   run into <output_root>/<EXPERIMENT_ID> instead of the current experiment
  OUTPUT_ROOT     overrides output_root of configs/experiment.toml
  FRESH=1         same as --fresh
  CONFIG_DIR      read settings from this folder instead of configs/
  WANDB_MODE      online / offline / disabled (default: online when logged in; tiny: offline)
  SFT_VS_RLVR_CACHE  cache folder of the tiny base model (default ~/.cache/sft-vs-rlvr)

Reads:  configs/experiment.toml, configs/sft.toml
Writes: <output_root>/<experiment id>/experiment.json, data/ (prepared once), sft/ (manifest.json,
        train.log, model/, checkpoints/, wandb/)
USAGE
}

parse_launcher_args "$@"
check_python
PROFILE="${PROFILE:-llama8b}"
load_exports python -m sft_vs_rlvr.settings export --profile "$PROFILE"
load_exports python -m sft_vs_rlvr.runs begin sft --profile "$PROFILE" ${FRESH:+--fresh} ${DRY_RUN:+--dry-run}
if [[ "$STAGE_STATUS" == completed ]]; then
  echo "sft: already completed in $RUN_DIR; skipping (--fresh starts a new experiment)"
  exit 0
fi

case "$PROFILE" in
  tiny)
    if [[ -n "$DRY_RUN" ]]; then BASE_MODEL_PATH="$(python -m sft_vs_rlvr.tiny_model path)"
    else BASE_MODEL_PATH="$(python -m sft_vs_rlvr.tiny_model ensure)"; fi
    cmd=(python -m sft_vs_rlvr.tiny_train sft
      --model "$BASE_MODEL_PATH"
      --train-file "$DATA_DIR/sft_train.jsonl"
      --output-dir "$RUN_DIR"
      --seed "$SEED"
      --learning-rate "$SFT_LEARNING_RATE"
      --epochs "$SFT_EPOCHS"
      --per-device-batch-size "$SFT_PER_DEVICE_BATCH_SIZE"
      --gradient-accumulation-steps "$SFT_GRADIENT_ACCUMULATION_STEPS"
      --warmup-ratio "$SFT_WARMUP_RATIO"
      --max-seq-length "$((MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH))"
      --checkpoints "$SFT_CHECKPOINTS")
    ;;
  *)
    die "profile '$PROFILE' has no SFT command in this launcher yet; use PROFILE=tiny"
    ;;
esac

if [[ -n "$DRY_RUN" ]]; then
  print_command "${cmd[@]}"
  exit 0
fi
exec python -m sft_vs_rlvr.runs run --run-dir "$RUN_DIR" -- "${cmd[@]}"

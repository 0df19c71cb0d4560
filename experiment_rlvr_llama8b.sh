#!/usr/bin/env bash
# RLVR arm (GRPO with a verifiable reward) of the SFT-vs-RLVR experiment.
#
# PROFILE=llama8b (default): Llama 3.1 8B on GSM8K through open-instruct's grpo_fast.py
#                            (Ray + vLLM + DeepSpeed), on a GPU box.
# PROFILE=tiny:              the same experiment in miniature on a CPU (TRL's GRPOTrainer).
#
# Reward: open-instruct's GSM8K verifier (last number == gold), no format gate. Shared settings
# come from configs/experiment.toml, the GRPO hyperparameters from configs/rlvr.toml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
source scripts/launcher_common.sh

usage() {
  cat <<'USAGE'
Usage: ./experiment_rlvr_llama8b.sh [--fresh] [--dry-run] [--help]

Trains the RLVR arm with GRPO on the same training questions, template and seed as the SFT arm.
A finished run is not redone; an interrupted one is kept aside and restarted.

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

Reads:  configs/experiment.toml, configs/rlvr.toml
Writes: <output_root>/<experiment id>/experiment.json, data/ (prepared once), rlvr/ (manifest.json,
        train.log, model/, checkpoints/, wandb/)
USAGE
}

parse_launcher_args "$@"
check_python
PROFILE="${PROFILE:-llama8b}"
load_exports python -m sft_vs_rlvr.settings export --profile "$PROFILE"
load_exports python -m sft_vs_rlvr.runs begin rlvr --profile "$PROFILE" ${FRESH:+--fresh} ${DRY_RUN:+--dry-run}
if [[ "$STAGE_STATUS" == completed ]]; then
  echo "rlvr: already completed in $RUN_DIR; skipping (--fresh starts a new experiment)"
  exit 0
fi

case "$PROFILE" in
  tiny)
    if [[ -n "$DRY_RUN" ]]; then BASE_MODEL_PATH="$(python -m sft_vs_rlvr.tiny_model path)"
    else BASE_MODEL_PATH="$(python -m sft_vs_rlvr.tiny_model ensure)"; fi
    cmd=(python -m sft_vs_rlvr.tiny_train rlvr
      --model "$BASE_MODEL_PATH"
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
    ;;
  *)
    die "profile '$PROFILE' has no RLVR command in this launcher yet; use PROFILE=tiny"
    ;;
esac

if [[ -n "$DRY_RUN" ]]; then
  print_command "${cmd[@]}"
  exit 0
fi
exec python -m sft_vs_rlvr.runs run --run-dir "$RUN_DIR" -- "${cmd[@]}"

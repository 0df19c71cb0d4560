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
  WANDB_ENTITY    W&B entity (llama8b; offline runs get a placeholder)
  NUM_GPUS        GPUs per node (default: the visible ones); a layout of configs/layouts.toml
  NUM_NODES, NODE_RANK, MAIN_ADDR, MAIN_PORT   several nodes: run the launcher on each (llama8b)
  OPEN_INSTRUCT_DIR  the open-instruct checkout (default: ~/.cache/sft-vs-rlvr/open-instruct)
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
load_exports python -m sft_vs_rlvr.layouts export --profile "$PROFILE"    # NUM_GPUS, NUM_NODES -> processes, accumulation
# Preflight before anything is written: the pinned open-instruct checkout must be there.
[[ "$PROFILE" == tiny || -n "$DRY_RUN" ]] || python -m sft_vs_rlvr.open_instruct check
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
  llama8b)
    load_exports python -m sft_vs_rlvr.open_instruct export               # OPEN_INSTRUCT_DIR, OPEN_INSTRUCT_COMMIT
    load_exports python -m sft_vs_rlvr.tracking export --profile "$PROFILE" # WANDB_MODE, WANDB_ENTITY
    # Multi-node: the same command on every node, with NODE_RANK 0..NUM_NODES-1 and MAIN_ADDR of node 0.
    cmd=(accelerate launch
      --mixed_precision bf16
      --num_machines "$NUM_NODES"
      --machine_rank "${NODE_RANK:-0}"
      --main_process_ip "${MAIN_ADDR:-127.0.0.1}"
      --main_process_port "${MAIN_PORT:-29500}"
      --num_processes "$SFT_NUM_PROCESSES"
      --use_deepspeed
      --deepspeed_config_file "$OPEN_INSTRUCT_DIR/configs/ds_configs/stage3_no_offloading_accelerate.conf"
      --deepspeed_multinode_launcher standard
      "$OPEN_INSTRUCT_DIR/open_instruct/finetune.py"
      --exp_name sft
      --output_dir "$RUN_DIR/output"
      --model_name_or_path "$BASE_MODEL"
      --tokenizer_name "$BASE_MODEL"
      --chat_template_name "$CHAT_TEMPLATE"
      --dataset_mixer_list "$DATA_DIR/sft_train.jsonl" 1.0
      --dataset_mixer_list_splits train
      --max_seq_length "$((MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH))"
      --per_device_train_batch_size "$SFT_PER_DEVICE_BATCH_SIZE"
      --gradient_accumulation_steps "$SFT_GRADIENT_ACCUMULATION_STEPS"
      --learning_rate "$SFT_LEARNING_RATE"
      --lr_scheduler_type linear
      --warmup_ratio "$SFT_WARMUP_RATIO"
      --weight_decay 0.0
      --num_train_epochs "$SFT_EPOCHS"
      --seed "$SEED"
      --gradient_checkpointing
      --checkpointing_steps "$SFT_CHECKPOINT_EVERY"
      --keep_last_n_checkpoints -1
      --clean_checkpoints_at_end false
      --logging_steps 1
      --with_tracking
      --report_to wandb
      --wandb_project_name "$WANDB_PROJECT"
      ${WANDB_ENTITY:+--wandb_entity "$WANDB_ENTITY"}
      --push_to_hub false
      --try_launch_beaker_eval_jobs false)
    ;;
  *)
    die "profile '$PROFILE' has no SFT command in this launcher; use PROFILE=llama8b or PROFILE=tiny"
    ;;
esac

if [[ -n "$DRY_RUN" ]]; then
  print_command "${cmd[@]}"
  exit 0
fi
exec python -m sft_vs_rlvr.runs run --run-dir "$RUN_DIR" -- "${cmd[@]}"

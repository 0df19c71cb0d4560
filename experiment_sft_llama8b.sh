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
Usage: ./experiment_sft_llama8b.sh [--fresh] [--dry-run] [--plan] [--help]

Trains the SFT arm: the gold GSM8K solutions of the training questions, under the shared prompt
template, seed 42. A finished run is not redone; an interrupted one is resumed (llama8b: finetune.py
continues from its last step_N state) or kept aside and restarted (tiny).

Options:
  --fresh     start a new experiment id (the old run folders are left alone)
  --dry-run   print the exact command, one line, shell-quoted, and exit; writes nothing
  --plan      print the budget (steps, tokens, checkpoints, disk, memory, time, cost) and exit
  --help      this text

Environment:
  PROFILE         llama8b (default) or tiny
  SFT_TRAINER     tiny profile only: trl (default) or open-instruct (the real finetune.py on the CPU,
                  for testing the GPU path; needs scripts/setup_open_instruct_cpu.sh)
  EXPERIMENT_ID   run into <output_root>/<EXPERIMENT_ID> instead of the current experiment
  OUTPUT_ROOT     overrides output_root of configs/experiment.toml
  FRESH=1         same as --fresh
  CONFIG_DIR      read settings from this folder instead of configs/
  WANDB_MODE      online / offline / disabled (default: online when logged in; tiny: offline)
  WANDB_ENTITY    W&B entity (llama8b; offline runs get a placeholder)
  NUM_GPUS        GPUs per node (default: the visible ones); a layout of configs/layouts.toml
  NUM_NODES, NODE_RANK, MAIN_ADDR, MAIN_PORT   several nodes: run the launcher on each (llama8b)
  FORCE=1         launch although --plan's memory estimate says the layout does not fit
  OPEN_INSTRUCT_DIR, OPEN_INSTRUCT_VENV   the open-instruct checkout and its environment (make setup-gpu)
  SFT_VS_RLVR_CACHE  cache folder of the tiny base model (default ~/.cache/sft-vs-rlvr)

Reads:  configs/experiment.toml, configs/sft.toml, configs/layouts.toml, configs/plan.toml
Writes: <output_root>/<experiment id>/experiment.json, data/ (prepared once), sft/ (manifest.json,
        train.log, model/ or output/sft/ with its step_N states, wandb/)
USAGE
}

parse_launcher_args "$@"
check_python
PROFILE="${PROFILE:-llama8b}"
SFT_TRAINER="${SFT_TRAINER:-$([[ "$PROFILE" == tiny ]] && echo trl || echo open-instruct)}"
load_exports python -m sft_vs_rlvr.settings export --profile "$PROFILE"
load_exports python -m sft_vs_rlvr.plan export --profile "$PROFILE"     # layout, micro-batch, ZeRO stage; refuses what cannot fit
if [[ -n "$PLAN" ]]; then exec python -m sft_vs_rlvr.plan show --profile "$PROFILE" --stage sft; fi
# Preflight before anything is written: GPUs, open-instruct, Hub token, disk, W&B.
[[ "$PROFILE" == tiny || -n "$DRY_RUN" ]] || python -m sft_vs_rlvr.preflight environment sft --profile "$PROFILE"
load_exports python -m sft_vs_rlvr.runs begin sft --profile "$PROFILE" ${FRESH:+--fresh} ${DRY_RUN:+--dry-run}
if [[ "$STAGE_STATUS" == completed ]]; then
  echo "sft: already completed in $RUN_DIR; skipping (--fresh starts a new experiment)"
  exit 0
fi

case "$PROFILE:$SFT_TRAINER" in
  tiny:trl)
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
  llama8b:open-instruct|tiny:open-instruct)
    load_exports python -m sft_vs_rlvr.open_instruct export               # OPEN_INSTRUCT_DIR, _BIN, _COMMIT
    load_exports python -m sft_vs_rlvr.tracking export --profile "$PROFILE" # WANDB_MODE, WANDB_ENTITY
    if [[ "$PROFILE" == tiny ]]; then
      # The real finetune.py on the CPU with the tiny model, for tests of this path: no DeepSpeed, no
      # Liger (Triton kernels, GPU only). finetune.py loads models by Hub id only (it calls
      # snapshot_download), so the tiny model is registered as local/<name> in a hub cache in the run folder.
      if [[ -n "$DRY_RUN" ]]; then BASE_MODEL_PATH="$(python -m sft_vs_rlvr.tiny_model path)"
      else BASE_MODEL_PATH="$(python -m sft_vs_rlvr.tiny_model ensure)"; fi
      export HF_HUB_CACHE="$RUN_DIR/hub" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
      export PYTHONPATH="$PWD:$OPEN_INSTRUCT_DIR" LITELLM_LOCAL_MODEL_COST_MAP=True
      MODEL="local/$(basename "$BASE_MODEL_PATH")"
      TOKENIZER="$MODEL"
      [[ -n "$DRY_RUN" ]] || python -m sft_vs_rlvr.hf_cache "$BASE_MODEL_PATH" --cache-dir "$HF_HUB_CACHE" >/dev/null
      launch=("$OPEN_INSTRUCT_BIN/accelerate" launch --cpu --num_processes 1 --num_cpu_threads_per_process 1
        --mixed_precision no -m sft_vs_rlvr.oi_cpu)
      gpu_only=()
    else
      # Multi-node: the same command on every node, NODE_RANK 0..NUM_NODES-1, MAIN_ADDR of node 0.
      MODEL="$BASE_MODEL"
      TOKENIZER="$DATA_DIR/tokenizer"   # the base tokenizer with its own pad token (sft_vs_rlvr/tokenizer_prep.py)
      [[ -n "$DRY_RUN" ]] || python -m sft_vs_rlvr.tokenizer_prep --model "$BASE_MODEL" --out "$TOKENIZER" >/dev/null
      launch=("$OPEN_INSTRUCT_BIN/accelerate" launch
        --mixed_precision bf16
        --num_machines "$NUM_NODES"
        --machine_rank "${NODE_RANK:-0}"
        --main_process_ip "${MAIN_ADDR:-127.0.0.1}"
        --main_process_port "${MAIN_PORT:-29500}"
        --num_processes "$SFT_NUM_PROCESSES"
        --use_deepspeed
        --deepspeed_config_file "$OPEN_INSTRUCT_DIR/configs/ds_configs/$SFT_DEEPSPEED_CONFIG"
        --deepspeed_multinode_launcher standard)
      gpu_only=(--use_liger_kernel)
    fi
    # Speed without changing what is learned: --packing (padding-free micro-batches), Liger's fused
    # cross-entropy (no full logits in memory), fused AdamW, ZeRO-2 where it fits (plan.py), full
    # micro-batches. --checkpointing_steps writes training states (step_N/); all are kept for the curves.
    cmd=("${launch[@]}" "$OPEN_INSTRUCT_DIR/open_instruct/finetune.py"
      --exp_name sft
      --output_dir "$RUN_DIR/output"
      --dataset_local_cache_dir "$RUN_DIR/dataset_cache"
      --model_name_or_path "$MODEL"
      --tokenizer_name_or_path "$TOKENIZER"
      --chat_template_name "$CHAT_TEMPLATE"
      --dataset_mixer_list "$DATA_DIR/sft_train.jsonl" 1.0
      --dataset_mixer_list_splits train
      --max_seq_length "$((MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH))"
      --per_device_train_batch_size "$SFT_PER_DEVICE_BATCH_SIZE"
      --gradient_accumulation_steps "$SFT_GRADIENT_ACCUMULATION_STEPS"
      --packing
      "${gpu_only[@]}"
      --fused_optimizer true
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
    die "no SFT command for PROFILE=$PROFILE with SFT_TRAINER=$SFT_TRAINER; use PROFILE=llama8b, or PROFILE=tiny with SFT_TRAINER=trl or open-instruct"
    ;;
esac

if [[ -n "$DRY_RUN" ]]; then
  print_command "${cmd[@]}"
  exit 0
fi
# The command against open-instruct's own parser at the pinned tag, then the run.
[[ "$SFT_TRAINER" == trl ]] || python -m sft_vs_rlvr.preflight command -- "${cmd[@]}"
exec python -m sft_vs_rlvr.runs run --run-dir "$RUN_DIR" -- "${cmd[@]}"

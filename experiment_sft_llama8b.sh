#!/usr/bin/env bash
# SFT arm of the SFT-vs-RLVR experiment: Llama 3.1 8B on the gold GSM8K solutions, through open-instruct's
# finetune.py under accelerate + DeepSpeed, on a GPU box. PROFILE=tiny runs the same experiment in miniature
# on a CPU (scripts/tiny/); it branches off early, so the rest of this file is the llama8b recipe.
#
# Where each variable comes from (each exporter prints `export NAME=value` lines, see load_exports):
#   python -m sft_vs_rlvr.settings export       SEED, BASE_MODEL, CHAT_TEMPLATE, MAX_PROMPT_LENGTH,
#                                               MAX_RESPONSE_LENGTH, WANDB_PROJECT, ..., SFT_* (configs/sft.toml)
#   python -m sft_vs_rlvr.launch.plan export    NUM_GPUS, NUM_NODES, SFT_NUM_PROCESSES, SFT_CHECKPOINT_EVERY,
#                                               SFT_PER_DEVICE_BATCH_SIZE, SFT_GRADIENT_ACCUMULATION_STEPS,
#                                               SFT_DEEPSPEED_CONFIG (configs/layouts.toml + the memory plan)
#   python -m sft_vs_rlvr.runs begin            EXPERIMENT_ID, EXPERIMENT_DIR, RUN_DIR, DATA_DIR, STAGE_STATUS
#   python -m sft_vs_rlvr.launch.open_instruct export   OPEN_INSTRUCT_DIR, OPEN_INSTRUCT_BIN, OPEN_INSTRUCT_COMMIT
#   python -m sft_vs_rlvr.tracking export       WANDB_MODE, WANDB_ENTITY
# The user sets PROFILE, NUM_GPUS, NUM_NODES, NODE_RANK, MAIN_ADDR, MAIN_PORT, SEED, ... (see --help).
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
  --dry-run   print the exact command, one flag per line (paste it into a shell), and exit; writes nothing
  --plan      print the budget (steps, tokens, checkpoints, disk, memory, time, cost) and exit
  --help      this text

Environment:
  PROFILE         llama8b (default) or tiny
  SFT_TRAINER     tiny profile only: trl (default) or open-instruct (the real finetune.py on the CPU,
                  for testing the GPU path; needs scripts/setup_open_instruct_cpu.sh)
  EXPERIMENT_ID   run into <output_root>/<EXPERIMENT_ID> instead of the current experiment
  OUTPUT_ROOT     overrides output_root of configs/experiment.toml
  FRESH=1         same as --fresh
  SEED            another seed of the same experiment (its own experiment folder, <profile>-seed<SEED>)
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
        command.sh, train.log, model/ or output/sft/ with the latest step_N state, snapshots/step_N/ model
        folders for the learning curve, wandb/)
USAGE
}

parse_launcher_args "$@"
check_python
PROFILE="${PROFILE:-llama8b}"
load_exports python -m sft_vs_rlvr.settings export --profile "$PROFILE"
load_exports python -m sft_vs_rlvr.launch.plan export --profile "$PROFILE"   # layout, micro-batch, ZeRO stage; refuses what cannot fit
if [[ -n "$PLAN" ]]; then exec python -m sft_vs_rlvr.launch.plan show --profile "$PROFILE" --stage sft; fi
# Preflight before anything is written: GPUs, open-instruct, Hub token, disk, W&B.
[[ "$PROFILE" == tiny || -n "$DRY_RUN" ]] || python -m sft_vs_rlvr.launch.preflight environment sft --profile "$PROFILE"
load_exports python -m sft_vs_rlvr.runs begin sft --profile "$PROFILE" ${FRESH:+--fresh} ${DRY_RUN:+--dry-run}
if [[ "$STAGE_STATUS" == completed ]]; then
  echo "sft: already completed in $RUN_DIR; skipping (--fresh starts a new experiment)" >&2
  exit 0
fi

# The tiny profile on a CPU: TRL's SFTTrainer (the default) runs from its own script and exits;
# SFT_TRAINER=open-instruct keeps the finetune.py command below and swaps the launch for a CPU one.
SFT_TRAINER="${SFT_TRAINER:-$([[ "$PROFILE" == tiny ]] && echo trl || echo open-instruct)}"
case "$PROFILE:$SFT_TRAINER" in
  tiny:trl) exec scripts/tiny/sft_trl.sh ;;
  llama8b:open-instruct|tiny:open-instruct) ;;
  *) die "no SFT command for PROFILE=$PROFILE with SFT_TRAINER=$SFT_TRAINER; use PROFILE=llama8b, or PROFILE=tiny with SFT_TRAINER=trl or open-instruct" ;;
esac

load_exports python -m sft_vs_rlvr.launch.open_instruct export   # OPEN_INSTRUCT_DIR, _BIN, _COMMIT
load_exports python -m sft_vs_rlvr.tracking export --profile "$PROFILE"   # WANDB_MODE, WANDB_ENTITY

# The base model with its own tokenizer, given Llama 3.1's reserved pad token so open-instruct adds no
# "<pad>" row (sft_vs_rlvr/launch/tokenizer_prep.py); both arms use this tokenizer.
MODEL="$BASE_MODEL"
TOKENIZER="$DATA_DIR/tokenizer"
# Several nodes: the same command on every node, NODE_RANK 0..NUM_NODES-1, MAIN_ADDR of node 0.
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
if [[ "$PROFILE" == tiny ]]; then
  source scripts/tiny/sft_open_instruct.sh   # MODEL, TOKENIZER, launch, gpu_only for the tiny model
elif [[ -z "$DRY_RUN" ]]; then
  python -m sft_vs_rlvr.launch.tokenizer_prep --model "$BASE_MODEL" --out "$TOKENIZER" >/dev/null
fi

# The generation contract's BOS choice (configs/experiment.toml), shared with the RLVR arm and the evaluator.
bos_flag=(); [[ "$ADD_BOS" == true ]] && bos_flag=(--add_bos)
# Speed without changing what is learned: --packing (padding-free micro-batches), Liger's fused
# cross-entropy (no full logits in memory), fused AdamW, ZeRO-2 where it fits (plan.py), full
# micro-batches. --checkpointing_steps writes training states (step_N/), at steps that divide an epoch; finetune.py
# deletes none of them (--keep_last_n_checkpoints -1, --clean_checkpoints_at_end false): the runner below does.
cmd=("${launch[@]}" "$OPEN_INSTRUCT_DIR/open_instruct/finetune.py"
  --exp_name sft
  --output_dir "$RUN_DIR/output"
  --dataset_local_cache_dir "$RUN_DIR/dataset_cache"
  --model_name_or_path "$MODEL"
  --tokenizer_name_or_path "$TOKENIZER"
  --chat_template_name "$CHAT_TEMPLATE"
  "${bos_flag[@]}"
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

show_command_if_dry_run "${cmd[@]}"
# The command against open-instruct's own parser at the pinned tag, then the run.
python -m sft_vs_rlvr.launch.preflight command -- "${cmd[@]}"
# The learning curve at a fraction of the disk (sft_vs_rlvr/launch/snapshots.py): while finetune.py trains, each
# state it completes becomes a model folder in $RUN_DIR/snapshots/, and every state but the newest complete one
# (the resume point) is removed once its model folder is verified.
exec python -m sft_vs_rlvr.runs run --run-dir "$RUN_DIR" \
  --snapshots "$RUN_DIR/output/sft" --snapshot-config "$MODEL" --snapshot-tokenizer "$TOKENIZER" \
  -- "${cmd[@]}"

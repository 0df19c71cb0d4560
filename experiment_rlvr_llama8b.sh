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
  WANDB_ENTITY    W&B entity (llama8b; offline runs get a placeholder)
  NUM_GPUS        GPUs per node (default: the visible ones); a layout of configs/layouts.toml
  NUM_NODES       nodes of a running Ray cluster (llama8b; see the comment in the llama8b branch)
  OPEN_INSTRUCT_DIR  the open-instruct checkout (default: ~/.cache/sft-vs-rlvr/open-instruct)
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
load_exports python -m sft_vs_rlvr.layouts export --profile "$PROFILE"    # learners, engines, steps, snapshots
# Preflight before anything is written: the pinned open-instruct checkout must be there.
[[ "$PROFILE" == tiny || -n "$DRY_RUN" ]] || python -m sft_vs_rlvr.open_instruct check
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
  llama8b)
    load_exports python -m sft_vs_rlvr.open_instruct export               # OPEN_INSTRUCT_DIR, OPEN_INSTRUCT_COMMIT
    load_exports python -m sft_vs_rlvr.tracking export --profile "$PROFILE" # WANDB_MODE, WANDB_ENTITY
    # Several nodes: start Ray first (head: ray start --head; workers: ray start --address MAIN_ADDR:6379),
    # then run this launcher on the head node only; grpo_fast attaches to the running cluster.
    # shellcheck disable=SC2206  # one learner count per node, on purpose split into words
    learners=($RLVR_LEARNERS_PER_NODE)
    cmd=(python "$OPEN_INSTRUCT_DIR/open_instruct/grpo_fast.py"
      --exp_name rlvr
      --output_dir "$RUN_DIR/output"
      --model_name_or_path "$BASE_MODEL"
      --chat_template_name "$CHAT_TEMPLATE"
      --dataset_mixer_list "$DATA_DIR/rl_train.jsonl" 1.0
      --dataset_mixer_list_splits train
      --dataset_mixer_eval_list "$DATA_DIR/test.jsonl" 256
      --dataset_mixer_eval_list_splits train
      --max_prompt_token_length "$MAX_PROMPT_LENGTH"
      --response_length "$MAX_RESPONSE_LENGTH"
      --pack_length "$((MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH))"
      --num_unique_prompts_rollout "$RLVR_PROMPTS_PER_STEP"
      --num_samples_per_prompt_rollout "$RLVR_SAMPLES_PER_PROMPT"
      --total_episodes "$RLVR_TOTAL_EPISODES"
      --num_epochs 1
      --num_mini_batches 1
      --learning_rate "$RLVR_LEARNING_RATE"
      --lr_scheduler_type constant
      --beta "$RLVR_BETA"
      --kl_estimator 2
      --temperature "$RLVR_TEMPERATURE"
      --apply_verifiable_reward true
      --verification_reward 1.0
      --apply_r1_style_format_reward false
      --non_stop_penalty false
      --async_steps 1
      --advantage_normalization_type standard
      --clip_lower 0.2
      --clip_higher 0.2
      --use_rho_correction true
      --local_eval_every "$RLVR_EVAL_EVERY"
      --eval_pass_at_k 1
      --save_freq "$RLVR_SAVE_EVERY"
      --checkpoint_state_freq "$RLVR_SAVE_EVERY"
      --checkpoint_state_dir "$RUN_DIR/state"
      --num_learners_per_node "${learners[@]}"
      --vllm_num_engines "$RLVR_VLLM_ENGINES"
      --vllm_tensor_parallel_size 1
      --deepspeed_stage 3
      --deepspeed_zpg 1
      --seed "$SEED"
      --with_tracking
      --wandb_project "$WANDB_PROJECT"
      ${WANDB_ENTITY:+--wandb_entity "$WANDB_ENTITY"}
      --push_to_hub false)
    ;;
  *)
    die "profile '$PROFILE' has no RLVR command in this launcher; use PROFILE=llama8b or PROFILE=tiny"
    ;;
esac

if [[ -n "$DRY_RUN" ]]; then
  print_command "${cmd[@]}"
  exit 0
fi
exec python -m sft_vs_rlvr.runs run --run-dir "$RUN_DIR" -- "${cmd[@]}"

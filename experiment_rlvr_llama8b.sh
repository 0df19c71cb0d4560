#!/usr/bin/env bash
# RLVR arm (GRPO with a verifiable reward) of the SFT-vs-RLVR experiment: Llama 3.1 8B on the GSM8K training
# questions through open-instruct's grpo_fast.py (Ray + vLLM + DeepSpeed), on a GPU box. Reward: open-instruct's
# GSM8K verifier (last number == gold), no format gate. PROFILE=tiny runs the same experiment in miniature on a
# CPU (TRL's GRPOTrainer, scripts/tiny/rlvr_trl.sh); it branches off early, so the rest of this file is the
# llama8b recipe.
#
# Where each variable comes from (each exporter prints `export NAME=value` lines, see load_exports):
#   python -m sft_vs_rlvr.settings export       SEED, BASE_MODEL, CHAT_TEMPLATE, MAX_PROMPT_LENGTH,
#                                               MAX_RESPONSE_LENGTH, WANDB_PROJECT, ..., RLVR_* (configs/rlvr.toml)
#   python -m sft_vs_rlvr.launch.plan export    NUM_GPUS, NUM_NODES, RLVR_LEARNERS_PER_NODE, RLVR_VLLM_ENGINES,
#                                               RLVR_TOTAL_EPISODES, RLVR_SAVE_EVERY, RLVR_EVAL_EVERY,
#                                               RLVR_DEEPSPEED_STAGE (configs/layouts.toml + the memory plan)
#   python -m sft_vs_rlvr.runs begin            EXPERIMENT_ID, EXPERIMENT_DIR, RUN_DIR, DATA_DIR, STAGE_STATUS
#   python -m sft_vs_rlvr.runs init-model       INIT_MODEL (INIT_FROM=sft: the SFT arm's final model folder)
#   python -m sft_vs_rlvr.launch.open_instruct export   OPEN_INSTRUCT_DIR, OPEN_INSTRUCT_BIN, OPEN_INSTRUCT_COMMIT
#   python -m sft_vs_rlvr.tracking export       WANDB_MODE, WANDB_ENTITY
# The user sets PROFILE, INIT_FROM, NUM_GPUS, NUM_NODES, SEED, ... (see --help).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
source scripts/launcher_common.sh

usage() {
  cat <<'USAGE'
Usage: ./experiment_rlvr_llama8b.sh [--fresh] [--pilot] [--dry-run] [--plan] [--help]

Trains the RLVR arm with GRPO on the same training questions, template and seed as the SFT arm.
A finished run is not redone; an interrupted one is resumed (llama8b) or kept aside and restarted (tiny).
Before RL it runs the pilot (sft_vs_rlvr/launch/pilot.py): the starting model sampled on a few hundred
training prompts under the exact RL settings; the launch is refused when too few groups have any reward
variance to learn from (pilot_min_informative_groups in configs/rlvr.toml). A finished pilot is reused.

Options:
  --fresh     start a new experiment id (the old run folders are left alone)
  --pilot     run only the pilot, print and write <run folder>/pilot.json, and exit
  --dry-run   print the exact command, one flag per line (paste it into a shell), and exit; writes nothing
  --plan      print the budget (steps, tokens, samples, checkpoints, disk, memory, time, cost) and exit
  --help      this text

Environment:
  PROFILE         llama8b (default) or tiny
  RLVR_TRAINER    tiny profile only: trl (default) or open-instruct (grpo_fast.py in single-GPU mode: the
                  dress rehearsal on a GPU box, make gpu-check; needs Ray and vLLM)
  INIT_FROM       base (default) or sft: the third arm, GRPO started from this experiment's SFT model,
                  everything else equal (run folder sft_rlvr/)
  EXPERIMENT_ID   run into <output_root>/<EXPERIMENT_ID> instead of the current experiment
  OUTPUT_ROOT     overrides output_root of configs/experiment.toml
  FRESH=1         same as --fresh
  SEED            another seed of the same experiment (its own experiment folder, <profile>-seed<SEED>)
  CONFIG_DIR      read settings from this folder instead of configs/
  WANDB_MODE      online / offline / disabled (default: online when logged in; tiny: offline)
  WANDB_ENTITY    W&B entity (llama8b; offline runs get a placeholder)
  NUM_GPUS        GPUs per node (default: the visible ones); a layout of configs/layouts.toml
  NUM_NODES       nodes of a running Ray cluster (llama8b; scripts/ray_cluster.sh, README "Several nodes")
  FORCE=1         launch although --plan's memory estimate says the layout does not fit, or the pilot
                  finds too little learning signal
  OPEN_INSTRUCT_DIR, OPEN_INSTRUCT_VENV   the open-instruct checkout and its environment (make setup-gpu)
  SFT_VS_RLVR_CACHE  cache folder of the tiny base model (default ~/.cache/sft-vs-rlvr)

Reads:  configs/experiment.toml, configs/rlvr.toml, configs/layouts.toml, configs/plan.toml
Writes: <output_root>/<experiment id>/experiment.json, data/ (prepared once), rlvr/ or sft_rlvr/
        (pilot.json, manifest.json, command.sh, train.log, model or output/, checkpoints, wandb/)
USAGE
}

PILOT_ONLY=""; launcher_args=()
for arg in "$@"; do if [[ "$arg" == --pilot ]]; then PILOT_ONLY=1; else launcher_args+=("$arg"); fi; done
parse_launcher_args "${launcher_args[@]}"
check_python
PROFILE="${PROFILE:-llama8b}"
case "${INIT_FROM:-base}" in
  base) STAGE=rlvr ;;
  sft) STAGE=sft_rlvr ;;
  *) die "INIT_FROM='${INIT_FROM}' is not a starting point; use INIT_FROM=base (default) or INIT_FROM=sft" ;;
esac
load_exports python -m sft_vs_rlvr.settings export --profile "$PROFILE"
load_exports python -m sft_vs_rlvr.launch.plan export --profile "$PROFILE"     # layout, ZeRO stage; refuses what cannot fit
if [[ -n "$PLAN" ]]; then exec python -m sft_vs_rlvr.launch.plan show --profile "$PROFILE" --stage rlvr; fi
# Preflight before anything is written: GPUs, open-instruct, Hub token, disk, W&B, Ray's CPUs.
[[ "$PROFILE" == tiny || -n "$DRY_RUN" ]] || python -m sft_vs_rlvr.launch.preflight environment "$STAGE" --profile "$PROFILE"
load_exports python -m sft_vs_rlvr.runs begin "$STAGE" --profile "$PROFILE" ${FRESH:+--fresh} ${DRY_RUN:+--dry-run}
if [[ "$STAGE_STATUS" == completed ]]; then
  echo "$STAGE: already completed in $RUN_DIR; skipping (--fresh starts a new experiment)" >&2
  exit 0
fi

# The model GRPO starts from: the base model, or (INIT_FROM=sft) the SFT arm's final model folder.
if [[ "$STAGE" == sft_rlvr ]]; then
  load_exports python -m sft_vs_rlvr.runs init-model --from sft --profile "$PROFILE" ${DRY_RUN:+--dry-run}
elif [[ "$PROFILE" == tiny ]]; then
  INIT_MODEL="$(python -m sft_vs_rlvr.tiny.model "$([[ -n "$DRY_RUN" ]] && echo path || echo ensure)")"
else
  INIT_MODEL="$BASE_MODEL"
fi
export INIT_MODEL

# The pilot (every profile, every starting point): is there a learning signal under the exact RL settings?
# Refused below pilot_min_informative_groups (FORCE=1 overrides); a finished pilot of the same model and
# settings is reused. llama8b samples with vLLM in open-instruct's environment.
run_pilot() {
  [[ -z "$DRY_RUN" ]] || return 0
  "$@" -m sft_vs_rlvr.launch.pilot --run-dir "$RUN_DIR" --data-dir "$DATA_DIR" --model "$INIT_MODEL" \
    --tokenizer "$TOKENIZER" --profile "$PROFILE"
  [[ -z "$PILOT_ONLY" ]] || exit 0
}

# The tiny profile: TRL's GRPOTrainer (the default) runs from its own script and exits. RLVR_TRAINER=open-instruct
# keeps grpo_fast's command below in open-instruct's single-GPU mode (the dress rehearsal; needs Ray and vLLM).
RLVR_TRAINER="${RLVR_TRAINER:-$([[ "$PROFILE" == tiny ]] && echo trl || echo open-instruct)}"
case "$PROFILE:$RLVR_TRAINER" in
  tiny:trl)
    TOKENIZER="$INIT_MODEL"
    run_pilot python
    exec scripts/tiny/rlvr_trl.sh ;;
  llama8b:open-instruct|tiny:open-instruct) ;;
  *) die "no RLVR command for PROFILE=$PROFILE with RLVR_TRAINER=$RLVR_TRAINER; use PROFILE=llama8b, or PROFILE=tiny with RLVR_TRAINER=trl or open-instruct" ;;
esac

load_exports python -m sft_vs_rlvr.launch.open_instruct export   # OPEN_INSTRUCT_DIR, _BIN, _COMMIT
load_exports python -m sft_vs_rlvr.tracking export --profile "$PROFILE"   # WANDB_MODE, WANDB_ENTITY
# open-instruct would add a "<pad>" token past Llama 3.1's embedding matrix, which grpo_fast never resizes;
# both arms use the base tokenizer with its own reserved pad token instead (sft_vs_rlvr/launch/tokenizer_prep.py).
TOKENIZER="$DATA_DIR/tokenizer"
single_gpu=()
if [[ "$PROFILE" == tiny ]]; then
  source scripts/tiny/rlvr_open_instruct.sh   # INIT_MODEL, TOKENIZER, single_gpu for the tiny model on one GPU
elif [[ -z "$DRY_RUN" ]]; then
  python -m sft_vs_rlvr.launch.tokenizer_prep --model "$BASE_MODEL" --out "$TOKENIZER" >/dev/null
fi
run_pilot "$OPEN_INSTRUCT_BIN/python"

# Several nodes: start Ray first (head: ray start --head; workers: ray start --address MAIN_ADDR:6379),
# then run this launcher on the head node only; grpo_fast attaches to the running cluster.
# shellcheck disable=SC2206  # one learner count per node, on purpose split into words
learners=($RLVR_LEARNERS_PER_NODE)
# Every GRPO knob whose default moved between open-instruct versions, or that changes what is learned, is
# set here with its reason (defaults at v0.3.0 in brackets; open-instruct-notes.md §2.2):
#   --async_steps 1                 [8]      generation runs at most one step ahead of training
#   --inflight_updates false        [true]   no weight update lands in the middle of a response, so each
#                                            rollout comes from one policy (near on-policy GRPO)
#   --loss_fn dapo                  [dapo]   the PPO-clip objective, token-level
#   --loss_denominator token        [token]  per-token mean over the batch (DAPO), so long and short
#                                            responses weigh by their tokens
#   --filter_zero_std_samples true  [true]   groups whose 8 rewards are equal carry no advantage; dropping
#                                            them keeps them from diluting the token mean. Their counts are
#                                            logged (batch/filtered_prompts_*), so the report rebuilds the
#                                            true solve rate from them (the reward keys cover kept groups only)
#   --advantage_normalization_type standard [centered]  (r - mean) / std per group: GRPO as published
#   --clip_lower/--clip_higher 0.2  [0.2 / 0.272]  symmetric PPO clip as in GRPO and SimpleRL-Zoo
#   --use_rho_correction true       [true]   reweights by learner/vLLM log-prob ratio (kernel mismatch)
#   --beta, --load_ref_policy       [0.05, true]  configs/rlvr.toml: beta 0, no reference model (zero-RL)
#   --temperature                   [0.7]    configs/rlvr.toml (1.0); in-loop eval samples at it too
#   --stop_strings, --add_bos       [none, false]  the generation contract of configs/experiment.toml,
#                                            shared with the SFT arm, the pilot and the evaluator
#   --record_entropy true           [false]  policy entropy per step, for the report's dynamics
#   --eval_on_step_0 true           [false]  an in-loop evaluation before the first update: the curve's start
#   --keep_last_n_checkpoints 1     [3]      only the latest training state is needed to resume; each is
#                                            ~105 GiB for 8B (HF snapshots for the curves are never pruned)
# Reward: the GSM8K verifier alone (10 for a correct last number: v0.3.0's verification_reward is
# rescaled to 1.0), no format gate (SimpleRL-Zoo saw Llama 3.1 8B collapse under one), no penalty
# for truncation. In-loop evaluation: 256 rows of test.jsonl (a local file must say split train).
mapfile -t stops <<<"$STOP_STRINGS"   # one stop string per line (settings export)
bos_flag=(); [[ "$ADD_BOS" == true ]] && bos_flag=(--add_bos)
cmd=("$OPEN_INSTRUCT_BIN/python" "$OPEN_INSTRUCT_DIR/open_instruct/grpo_fast.py"
  --exp_name "$STAGE"
  --output_dir "$RUN_DIR/output"
  --dataset_local_cache_dir "$RUN_DIR/dataset_cache"
  --model_name_or_path "$INIT_MODEL"
  --tokenizer_name_or_path "$TOKENIZER"
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
  --load_ref_policy "$RLVR_LOAD_REF_POLICY"
  --kl_estimator 2
  --temperature "$RLVR_TEMPERATURE"
  --stop_strings "${stops[@]}"
  "${bos_flag[@]}"
  --apply_verifiable_reward true
  --verification_reward 1.0
  --apply_r1_style_format_reward false
  --non_stop_penalty false
  --async_steps 1
  --inflight_updates false
  --loss_fn dapo
  --loss_denominator token
  --filter_zero_std_samples true
  --advantage_normalization_type standard
  --clip_lower 0.2
  --clip_higher 0.2
  --use_rho_correction true
  --local_eval_every "$RLVR_EVAL_EVERY"
  --eval_on_step_0 true
  --eval_pass_at_k 1
  --record_entropy true
  --save_freq "$RLVR_SAVE_EVERY"
  --checkpoint_state_freq "$RLVR_SAVE_EVERY"
  --checkpoint_state_dir "$RUN_DIR/state"
  --keep_last_n_checkpoints 1
  --num_learners_per_node "${learners[@]}"
  --vllm_num_engines "$RLVR_VLLM_ENGINES"
  --vllm_tensor_parallel_size 1
  --deepspeed_stage "$RLVR_DEEPSPEED_STAGE"
  --deepspeed_zpg 1
  "${single_gpu[@]}"
  --seed "$SEED"
  --with_tracking
  --wandb_project "$WANDB_PROJECT"
  ${WANDB_ENTITY:+--wandb_entity "$WANDB_ENTITY"}
  --push_to_hub false)

show_command_if_dry_run "${cmd[@]}"
# The command against open-instruct's own parser at the pinned tag, then the run.
python -m sft_vs_rlvr.launch.preflight command -- "${cmd[@]}"
run_stage "${cmd[@]}"

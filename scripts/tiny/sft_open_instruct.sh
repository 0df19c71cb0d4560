# shellcheck shell=bash disable=SC2034  # MODEL, TOKENIZER, launch, gpu_only are read by the launcher that sources this
# Sourced by experiment_sft_llama8b.sh for PROFILE=tiny SFT_TRAINER=open-instruct: the real finetune.py on the tiny
# model, to test the GPU path's command in minutes. On a machine with a GPU it runs the llama8b stack itself
# (accelerate + DeepSpeed ZeRO-2 + Liger, one process; the dress rehearsal, make gpu-check); on a CPU the same
# command minus what needs a GPU (accelerate's CPU launch instead of DeepSpeed, no Liger).
# finetune.py loads models by Hub id only (it calls snapshot_download), so the tiny model is registered as
# local/<name> in a Hub cache inside the run folder.
if [[ -n "$DRY_RUN" ]]; then BASE_MODEL_PATH="$(python -m sft_vs_rlvr.tiny.model path)"
else BASE_MODEL_PATH="$(python -m sft_vs_rlvr.tiny.model ensure)"; fi
export HF_HUB_CACHE="$RUN_DIR/hub" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD:$OPEN_INSTRUCT_DIR" LITELLM_LOCAL_MODEL_COST_MAP=True
MODEL="local/$(basename "$BASE_MODEL_PATH")"
TOKENIZER="$MODEL"
[[ -n "$DRY_RUN" ]] || python -m sft_vs_rlvr.launch.hf_cache "$BASE_MODEL_PATH" --cache-dir "$HF_HUB_CACHE" >/dev/null
if [[ "$(python -m sft_vs_rlvr.launch.layouts visible)" -ge 1 ]]; then
  launch=("$OPEN_INSTRUCT_BIN/accelerate" launch
    --mixed_precision bf16
    --num_processes 1
    --use_deepspeed
    --deepspeed_config_file "$OPEN_INSTRUCT_DIR/configs/ds_configs/stage2_no_offloading_accelerate.conf")
  gpu_only=(--use_liger_kernel)
else
  export TRAINING_DEVICE=cpu   # the manifest's compute record: no GPU-hours for this stage (runs.py)
  launch=("$OPEN_INSTRUCT_BIN/accelerate" launch --cpu --num_processes 1 --num_cpu_threads_per_process 1
    --mixed_precision no -m sft_vs_rlvr.launch.oi_cpu)
  gpu_only=()
fi

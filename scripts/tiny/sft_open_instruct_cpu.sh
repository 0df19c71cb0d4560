# shellcheck shell=bash disable=SC2034  # MODEL, TOKENIZER, launch, gpu_only are read by the launcher that sources this
# Sourced by experiment_sft_llama8b.sh for PROFILE=tiny SFT_TRAINER=open-instruct: the real finetune.py on
# a CPU with the tiny model, to test the GPU path's command without a GPU. The llama8b command stays as it
# is, minus what needs a GPU: no DeepSpeed (accelerate's CPU launch instead), no Liger (Triton kernels).
# finetune.py loads models by Hub id only (it calls snapshot_download), so the tiny model is registered as
# local/<name> in a Hub cache inside the run folder.
if [[ -n "$DRY_RUN" ]]; then BASE_MODEL_PATH="$(python -m sft_vs_rlvr.tiny.model path)"
else BASE_MODEL_PATH="$(python -m sft_vs_rlvr.tiny.model ensure)"; fi
export HF_HUB_CACHE="$RUN_DIR/hub" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export TRAINING_DEVICE=cpu   # the manifest's compute record: no GPU-hours for this stage (runs.py)
export PYTHONPATH="$PWD:$OPEN_INSTRUCT_DIR" LITELLM_LOCAL_MODEL_COST_MAP=True
MODEL="local/$(basename "$BASE_MODEL_PATH")"
TOKENIZER="$MODEL"
[[ -n "$DRY_RUN" ]] || python -m sft_vs_rlvr.launch.hf_cache "$BASE_MODEL_PATH" --cache-dir "$HF_HUB_CACHE" >/dev/null
launch=("$OPEN_INSTRUCT_BIN/accelerate" launch --cpu --num_processes 1 --num_cpu_threads_per_process 1
  --mixed_precision no -m sft_vs_rlvr.launch.oi_cpu)
gpu_only=()

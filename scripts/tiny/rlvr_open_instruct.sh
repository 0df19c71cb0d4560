# shellcheck shell=bash disable=SC2034  # INIT_MODEL, TOKENIZER, single_gpu are read by the launcher that sources this
# Sourced by experiment_rlvr_llama8b.sh for PROFILE=tiny RLVR_TRAINER=open-instruct: grpo_fast.py on the tiny model
# in open-instruct's single-GPU mode (one learner and one vLLM engine share the card), the dress rehearsal of the
# llama8b command (make gpu-check). It needs a GPU, Ray and vLLM in open-instruct's environment (make setup-gpu).
# grpo_fast loads models by Hub id only, so the model is registered as local/<name> in a Hub cache in the run folder.
export HF_HUB_CACHE="$RUN_DIR/hub" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD:$OPEN_INSTRUCT_DIR" LITELLM_LOCAL_MODEL_COST_MAP=True
[[ -n "$DRY_RUN" ]] || python -m sft_vs_rlvr.launch.hf_cache "$INIT_MODEL" --cache-dir "$HF_HUB_CACHE" >/dev/null
INIT_MODEL="local/$(basename "$INIT_MODEL")"
TOKENIZER="$INIT_MODEL"
RLVR_LEARNERS_PER_NODE=1 RLVR_VLLM_ENGINES=1
# vLLM takes 30% of the card for weights and KV cache, the learner the rest; no CUDA graphs (start-up in seconds)
single_gpu=(--single_gpu_mode --vllm_gpu_memory_utilization 0.3 --vllm_enforce_eager)

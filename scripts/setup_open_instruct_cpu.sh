#!/usr/bin/env bash
# open-instruct at the pinned tag with a lean CPU environment, for developer and CI machines without GPUs:
# enough to import finetune.py and grpo_fast.py, parse their real command lines (python -m sft_vs_rlvr.launch.oi_parse)
# and train finetune.py on the tiny model (python -m sft_vs_rlvr.launch.oi_cpu); tests/test_open_instruct_real.py and
# the other tests of open-instruct's own code use it. Not for training on GPUs: that is `make setup-gpu`
# (open-instruct's own locked uv environment).
# Harmless to rerun; a checkout at another commit is reported, never silently used or changed.
#   OPEN_INSTRUCT_DIR  where the checkout goes (default: <cache>/open-instruct, see sft_vs_rlvr/cache.py)
#   OPEN_INSTRUCT_URL  clone URL or path (default: https://github.com/allenai/open-instruct.git)
#   PYTHON             the interpreter for the venv (default: python3.11)
#   OPEN_INSTRUCT_VENV the environment (default: <checkout>/.venv, where `make setup-gpu` puts the GPU one)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
eval "$(python3 -m sft_vs_rlvr.launch.open_instruct export)"   # OPEN_INSTRUCT_DIR, _BIN, _COMMIT, _TAG, _URL (stdlib only)
url="$OPEN_INSTRUCT_URL" tag="$OPEN_INSTRUCT_TAG"
python="${PYTHON:-python3.11}"

if [[ -d "$OPEN_INSTRUCT_DIR/.git" ]]; then
  echo "open-instruct: reusing $OPEN_INSTRUCT_DIR"
else
  # Sparse checkout without docs/: nothing here needs it, and some mirrors lack its large blobs (then
  # `git checkout` may still print "error: invalid object ... for 'docs/...'", which is harmless).
  mkdir -p "$(dirname "$OPEN_INSTRUCT_DIR")"
  git clone --quiet --no-checkout --depth 1 --branch "$tag" "$url" "$OPEN_INSTRUCT_DIR"
  git -C "$OPEN_INSTRUCT_DIR" sparse-checkout set --no-cone '/*' '!/docs/'
  git -C "$OPEN_INSTRUCT_DIR" checkout --quiet "$tag"
fi
python3 -m sft_vs_rlvr.launch.open_instruct check --checkout-only   # refuses a checkout at another commit, with the fix

venv="$(dirname "${OPEN_INSTRUCT_BIN:-$OPEN_INSTRUCT_DIR/.venv/bin}")"   # <checkout>/.venv, or OPEN_INSTRUCT_VENV
pip=("$venv/bin/python" -m pip install --quiet)
test -x "$venv/bin/python" || "$python" -m venv "$venv"
# Python 3.11, not the 3.12 open-instruct asks for (requires-python ==3.12.*): we run its source from the
# checkout (never pip-install it), and every file under open_instruct/ runs on 3.11.
# torch first and alone, a CPU build, so nothing below can pull a multi-GB CUDA torch. open-instruct locks
# torch 2.10.0+cu128; any torch>=2.10 satisfies its pyproject. TORCH_SPEC overrides it, as in the Makefile.
"${pip[@]}" "${TORCH_SPEC:-torch==2.13.0}"
# open-instruct's pyproject dependencies, minus what needs a GPU or GitHub: vllm (CUDA-only wheels that
# require torch==2.10.0; sft_vs_rlvr.launch.oi_parse stubs it), flash-attn 2/3/4 (GitHub wheels or CUDA builds;
# finetune.py falls back to torch sdpa), liger-kernel, bitsandbytes, tilelang, flash-linear-attention (GPU
# kernels), hf-transfer, nvitop, debugpy (needed neither to parse nor to train on CPU). Plus beaker-py, a dev
# dependency that open_instruct/utils.py imports unconditionally.
deps=(accelerate antlr4-python3-runtime backoff datasets huggingface-hub transformers tokenizers safetensors peft
      litellm matplotlib multiprocess nltk numpy packaging pyarrow pyyaml setuptools tensorboard wandb langdetect
      immutabledict fastapi uvicorn docker "ray[default]" mcp fastmcp openenv-core beaker-py rich)
# Versions: exactly those of open-instruct's uv.lock, direct and transitive, as pip constraints. Left out:
# torch/triton/nvidia-* (CUDA builds), packages locked at two versions by platform, and ai2-olmo-core, which
# the lock takes from an OLMo-core git commit (76c239c, 32 commits after v2.5.0, a tag never published on PyPI).
constraints="$venv/uv-lock-constraints.txt"
"$python" - "$OPEN_INSTRUCT_DIR/uv.lock" > "$constraints" <<'PY'
import sys, tomllib
from collections import defaultdict
versions, registry = defaultdict(set), set()
for package in tomllib.load(open(sys.argv[1], "rb"))["package"]:
    versions[package["name"]].add(package.get("version"))
    if "registry" in package.get("source", {}):
        registry.add(package["name"])
for name in sorted(registry):
    if len(versions[name]) == 1 and name not in ("torch", "triton") and not name.startswith("nvidia-"):
        print(f"{name}=={versions[name].pop()}")
PY
# ai2-olmo-core 2.6.0: the first PyPI release after that commit. protobuf 6.33.5: the lock's Linux version.
# The lock's versions matter beyond fidelity: later mcp (2.x) and openenv-core (0.3, which pulls fastmcp-slim 4)
# break open_instruct's imports.
"${pip[@]}" -c "$constraints" "${deps[@]}" ai2-olmo-core==2.6.0 protobuf==6.33.5
# deepspeed ships only an sdist: build it against the torch above (no build isolation), without compiling
# any CUDA/C++ op (DS_BUILD_OPS=0); finetune.py imports it but the CPU run never uses it.
DS_BUILD_OPS=0 "${pip[@]}" -c "$constraints" --no-build-isolation deepspeed
# open_instruct importable from this venv without installing it (its build needs setuptools_scm and a
# full git history): a .pth file naming the checkout, like an editable install without dependencies.
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$OPEN_INSTRUCT_DIR" > "$site/open_instruct_checkout.pth"
# Smoke test: finetune.py's imports (LITELLM_LOCAL_MODEL_COST_MAP: litellm would fetch a price list at import).
LITELLM_LOCAL_MODEL_COST_MAP=True "$venv/bin/python" -c 'import open_instruct.finetune' >/dev/null 2>&1 \
  || { echo "error: open_instruct.finetune does not import in $venv; rerun this script" >&2; exit 1; }
python3 -m sft_vs_rlvr.launch.open_instruct check
echo "open-instruct $tag ready for CPU use in $OPEN_INSTRUCT_DIR, environment $venv"

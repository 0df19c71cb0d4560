#!/usr/bin/env bash
# `make setup-gpu`: open-instruct at the pinned tag, in a cache folder outside this repository, with its
# own environment (uv sync), this project installed into it, and the nltk data it needs. Harmless to rerun;
# a checkout at another commit is reported, never silently used or changed.
#   OPEN_INSTRUCT_DIR  where the checkout goes (default: <cache>/open-instruct, see sft_vs_rlvr/cache.py)
#   OPEN_INSTRUCT_URL  clone URL (default: https://github.com/allenai/open-instruct.git)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
eval "$(python3 -m sft_vs_rlvr.launch.open_instruct export)"   # OPEN_INSTRUCT_DIR, _COMMIT, _TAG, _URL (stdlib only)
url="$OPEN_INSTRUCT_URL" tag="$OPEN_INSTRUCT_TAG"

command -v uv >/dev/null || { echo "error: uv is not installed; install it (pip install uv) and rerun make setup-gpu" >&2; exit 2; }
if [[ -d "$OPEN_INSTRUCT_DIR/.git" ]]; then
  echo "open-instruct: reusing $OPEN_INSTRUCT_DIR"
else
  git clone --branch "$tag" --depth 1 "$url" "$OPEN_INSTRUCT_DIR"
fi
python3 -m sft_vs_rlvr.launch.open_instruct check --checkout-only   # refuses a checkout at another commit, with the fix

# open-instruct's own locked environment (its README: uv sync), then this package into it, without deps.
(cd "$OPEN_INSTRUCT_DIR" && uv sync --frozen)
uv pip install --python "$OPEN_INSTRUCT_DIR/.venv/bin/python" --no-deps -e "$repo"
# ./evaluate_comparison.sh runs in this environment on a GPU box, where vLLM is: it also needs lm-eval for the
# reference protocol (the project's pin; its dependencies resolved against open-instruct's locked versions).
uv pip install --python "$OPEN_INSTRUCT_DIR/.venv/bin/python" "lm-eval==0.4.13"
# The nltk data open-instruct's Dockerfile fetches (punkt, punkt_tab, words).
"$OPEN_INSTRUCT_DIR/.venv/bin/python" -m nltk.downloader punkt punkt_tab words
python3 -m sft_vs_rlvr.launch.open_instruct check
echo "open-instruct $tag ready in $OPEN_INSTRUCT_DIR (the launchers call its environment themselves)"

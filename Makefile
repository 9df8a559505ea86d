# Everything a fresh machine needs: `make demo` runs the main job, `make test` the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0
GPTQMODEL_VERSION ?= 7.7.0
XGRAMMAR_VERSION ?= 0.2.9
TRITON_VERSION ?= 3.6.0
# Triton for the kernel test in Triton's interpreter (CPU); kept out of the venv's site-packages.
TRITON_DIR := $(VENV)/triton-interpreter
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench-overhead bench-sandbox clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/cpu-gptq.txt requirements/constraints.txt Makefile
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq bubblewrap; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq bubblewrap; fi; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "torch==$(TORCH_VERSION)"
	$(PIP) install -q -c requirements/constraints.txt -r requirements/cpu-gptq.txt
	$(PIP) install -q --no-deps "gptqmodel==$(GPTQMODEL_VERSION)" "xgrammar==$(XGRAMMAR_VERSION)"
	$(PIP) install -q -c requirements/constraints.txt -e ".[dev,langchain,llama-index,eval,remote,serve]"
	$(PIP) install -q --no-deps --target $(TRITON_DIR) "triton==$(TRITON_VERSION)"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/wizardcoder demo

test: setup
	$(VENV)/bin/lint-imports
	TRITON_INTERPRETER_PATH=$(abspath $(TRITON_DIR)) $(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check src tests bench

bench-overhead: setup
	$(PY) bench/overhead.py

bench-sandbox: setup
	$(PY) bench/sandbox.py

clean:
	rm -rf $(VENV) .pytest_cache

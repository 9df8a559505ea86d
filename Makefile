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

# Where dist-check builds the sdist and the wheel (ignored by git).
DIST := build/dist

.PHONY: setup demo test dist-check lint standin-tokenizer standin-data bench-overhead bench-sandbox clean

setup: $(STAMP)

# The last install names every extra but the engine's, whose packages come pinned before it: `serve` is the
# engine plus fastapi and uvicorn, which `dev` lists, and naming it would send pip's resolver after gptqmodel's
# wish for a newer torch than the pinned CPU build.
$(STAMP): pyproject.toml requirements/cpu-gptq.txt requirements/constraints.txt Makefile
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq bubblewrap; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq bubblewrap; fi; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "torch==$(TORCH_VERSION)"
	$(PIP) install -q -c requirements/constraints.txt -r requirements/cpu-gptq.txt
	$(PIP) install -q --no-deps "gptqmodel==$(GPTQMODEL_VERSION)" "xgrammar==$(XGRAMMAR_VERSION)"
	$(PIP) install -q -c requirements/constraints.txt -e ".[dev,langchain,agents,llama-index,eval,remote]"
	$(PIP) install -q --no-deps --target $(TRITON_DIR) "triton==$(TRITON_VERSION)"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/wizardcoder demo

test: setup standin-tokenizer dist-check
	$(VENV)/bin/lint-imports
	TRITON_INTERPRETER_PATH=$(abspath $(TRITON_DIR)) $(PY) -m pytest

# Build the sdist and, from it, the wheel (offline: no build isolation), and check both as PyPI would.
dist-check: setup
	rm -rf $(DIST)
	$(PY) -m build --no-isolation --outdir $(DIST) .
	$(VENV)/bin/twine check --strict $(DIST)/*
	$(VENV)/bin/check-wheel-contents $(DIST)/*.whl

# Fetch llama-tokenizer-js with npm (installed with apt where missing), check it against its recorded sha512
# integrity and build the stand-in's tokenizer into the cache; the tests then run offline.
standin-tokenizer: setup
	@command -v npm >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq npm; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq npm; fi; }
	$(PY) -m wizardcoder_integrations.standin.tokenizer

# Re-record the stand-in's training data (standin/data/*.jsonl) after changing a scenario, the template,
# the adapters' rendering or docs/; commit the result. The next test run rebuilds the stand-in.
standin-data: setup
	$(PY) -m wizardcoder_integrations.scenarios.record

lint: setup
	$(VENV)/bin/ruff check src tests bench

bench-overhead: setup
	$(PY) bench/overhead.py

bench-sandbox: setup
	$(PY) bench/sandbox.py

clean:
	rm -rf $(VENV) .pytest_cache build

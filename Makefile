# `make demo` and `make test` each build .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch: the CPU build unless an NVIDIA GPU is present (nvidia-smi on PATH), from PyTorch's own
# CPU index, so the result does not depend on this machine's pip configuration. For a CUDA build
# pick its index, e.g. `make test TORCH_INDEX=https://download.pytorch.org/whl/cu126`, or
# `make test TORCH_INDEX=` to let pip take torch from PyPI (CUDA on Linux).
TORCH_VERSION ?= 2.13.0
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo yes)
TORCH_INDEX ?= $(if $(HAS_GPU),,https://download.pytorch.org/whl/cpu)

.PHONY: demo test lint docs bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first (see TORCH_INDEX above): a bare `torch` requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet --retries 1 --timeout 15 "torch==$(TORCH_VERSION)" \
		$(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rewa demo --threads 1

test: $(STAMP)
	$(PY) -m pytest -q -n auto

# ruff (lint rules and per-file exceptions in pyproject.toml; formatting) and mypy on src/rewa.
LINT_STAMP := $(VENV)/.lint-installed
$(LINT_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(LINT_STAMP)

lint: $(LINT_STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks
	$(PY) -m mypy

# The documentation site (mkdocs.yml): every page in the nav, no broken link, the API reference
# from the docstrings; --strict turns every warning into a failure. Output: site/.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

bench: $(STAMP)
	$(PY) benchmarks/step.py

clean:
	rm -rf $(VENV) build site src/*.egg-info

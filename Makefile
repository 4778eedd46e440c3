# The two commands that matter: `make run` and `make test`. Both install what is missing first.
SHELL := /bin/bash
PYTHON ?= python3
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(shell command -v $(PYTHON))
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint typecheck unit bench install clean

ACCEL := $(wildcard src/tracemesh/accel/*.c)

# The C accelerators are compiled by the project's own (editable) install: rebuilt when they change.
$(VENV)/.installed: pyproject.toml uv.lock setup.py $(ACCEL)
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --user uv
	$(UV) sync --frozen --reinstall-package tracemesh
	@touch $@

install: $(VENV)/.installed

run: install  ## start all-in-one on the default ports with memory storage
	$(PY) -m tracemesh all-in-one $(ARGS)

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

test: lint typecheck unit  ## the whole suite: lint, mypy --strict, unit/contract/e2e tests

bench: install  ## OTLP ingest benchmark (see bench/RESULTS.md)
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

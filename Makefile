# The two commands that matter: `make run` and `make test`. Both install what is missing first.
SHELL := /bin/bash
PYTHON ?= python3
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(shell command -v $(PYTHON))
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
# Tests that need uv run the one make installed (tests/support/uv.py).
export TRACEMESH_UV := $(UV)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint typecheck unit pytest fuzz bench install clean ui ui-test browser kube netfilter

ACCEL := $(wildcard src/tracemesh/accel/*.c)

# The C accelerators are compiled by the project's own (editable) install: rebuilt when they change.
$(VENV)/.installed: pyproject.toml uv.lock setup.py $(ACCEL)
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --user uv
	$(UV) sync --frozen --reinstall-package tracemesh
	@touch $@

install: $(VENV)/.installed

# The web UI (ui/, TypeScript + React + Vite): built into the package, where the query role
# serves it; rebuilt when its sources change.
UI_BUILD := src/tracemesh/query/ui/index.html
UI_SOURCES := $(shell find ui/src ui/index.html ui/package.json ui/vite.config.ts ui/tsconfig.json -type f 2>/dev/null)

ui/node_modules/.installed: ui/package.json ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund
	@touch $@

$(UI_BUILD): ui/node_modules/.installed $(UI_SOURCES)
	cd ui && npm run build

ui: $(UI_BUILD)

ui-test: ui  ## type check and unit tests of the UI
	cd ui && npx vitest run

browser:  ## Debian's Chromium for the browser tests (never a tool's own browser download)
	@test -x /usr/bin/chromium || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; }

netfilter:  ## Debian's iptables, for the transparent-capture tests in network namespaces
	@command -v iptables-restore >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends iptables; }

kube:  ## the tests' Kubernetes control plane, built once from the Go module proxy (~10 min)
	@tests/integration/kube/build.sh >/dev/null

run: install ui  ## start all-in-one on the default ports with memory storage
	$(PY) -m tracemesh all-in-one $(ARGS)

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: install
	$(VENV)/bin/mypy

unit: install  ## the fast tier for development: unit + contract tests, without the slow ones
	$(PY) -m pytest -q -m "(unit or contract) and not slow" $(PYTEST_ARGS)

pytest: install  ## every test (unit, contract, integration, e2e, short fuzzing), CI's hypothesis profile
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest -q $(PYTEST_ARGS)

test: lint typecheck ui-test browser kube netfilter pytest  ## the whole suite: lint, mypy --strict, every test

FUZZ_SECONDS ?= 600
# atheris is a tool of this target only: installed beside the locked packages, not locked
fuzz: install  ## long fuzz campaign of the C accelerators, FUZZ_SECONDS per target (ASan + UBSan)
	$(UV) pip install -q --python $(PY) atheris
	$(PY) scripts/fuzz.py $(FUZZ_SECONDS)

bench: install  ## OTLP ingest benchmark (see bench/RESULTS.md)
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis ui/node_modules src/tracemesh/query/ui

# The one command surface: make run, make test, make check, make bench.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test check lint types unit bench install tools clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@# torch==2.13.0 resolves to a local CPU wheel here; any other spec would download GBs.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

## make run: set up, prepare the model, start the service with the demo tenants.
run: install
	$(BIN)/tenantrag serve --demo --host $(HOST) --port $(PORT)

## make test: set up, lint, type-check and run the whole test suite.
test: install tools check
	$(BIN)/pytest -q

## make check: lint, types, and the layers contract (imports point down the request path).
check: install
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

tools:
	@bash scripts/install-tools.sh

## make bench: the slow measurements (quality, latency, load, scale); figures go to docs/benchmarks.md.
bench: install
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache

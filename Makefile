# The one command surface: make run, make test, make check, make bench (and make lock, make compat).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The venv is rebuilt whenever the lock or the project's metadata changes.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha1sum | cut -c1-12)
# pip's own progress and notices say nothing a newcomer needs; errors still print.
PIP := $(BIN)/python -m pip --disable-pip-version-check -qq
HOST ?= 127.0.0.1
PORT ?= 8000
COMPAT_PYTHONS ?= python3.12 python3.13

.PHONY: run test check lint types unit bench install tools lock compat clean

$(STAMP): pyproject.toml requirements.lock
	@echo "==> .venv: installing the locked closure (requirements.lock)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# Every package and its hash come from the lock; pip refuses anything else.
	@$(PIP) install --require-hashes -r requirements.lock
	@echo "==> .venv: installing tenantrag itself (editable)"
	@$(PIP) install --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

## make run: set up, prepare the model, start the service with the demo tenants.
run: install
	@echo "==> starting tenantrag on http://$(HOST):$(PORT) with the demo tenants"
	$(BIN)/tenantrag serve --demo --host $(HOST) --port $(PORT)

## make test: set up, lint, type-check and run the whole test suite.
test: install tools check
	@echo "==> pytest"
	$(BIN)/pytest -q

## make check: lint, types, and the layers contract (imports point down the request path).
check: install
	@echo "==> ruff, ruff format, mypy, import-linter"
	@$(BIN)/ruff check src tests bench scripts
	@$(BIN)/ruff format --check src tests bench scripts
	@$(BIN)/mypy
	@$(BIN)/lint-imports

tools:
	@bash scripts/install-tools.sh

## make bench: the slow measurements (quality, latency, load, scale); figures go to docs/benchmarks.md.
bench: install
	$(BIN)/python -m bench.run_all

## make lock: re-resolve requirements.lock from pyproject.toml (see docs/development.md).
## Versions already in the lock are kept when they still fit; pass UPGRADE=1 to take the newest.
lock: install
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --all-build-deps --strip-extras \
		--no-emit-index-url --no-emit-find-links --extra export --extra dev \
		$(if $(UPGRADE),--upgrade) -o requirements.lock pyproject.toml
	$(BIN)/python deploy/requirements_runtime.py > deploy/requirements-runtime.txt
	$(BIN)/python deploy/requirements_runtime.py --export > deploy/requirements-export.txt

## make compat: the unit and contract tests on Python 3.12 and 3.13, from the same lock.
compat: install
	@bash scripts/compat.sh $(COMPAT_PYTHONS)

clean:
	rm -rf $(VENV) .venv-py* .cache .mypy_cache .ruff_cache .pytest_cache

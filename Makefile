# Every target CI uses is here; .ci/run calls `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: venv lint format typecheck test test-fast demo bench faults-long clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/.installed  ## a virtualenv with coder_ring and its dev tools

lint: venv  ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The Hypothesis profile of each tier (tests/harness/tiers.py): every property at its
# full example budget in `make test`, a fifth of it in `make test-fast`.
test: lint  ## what CI runs: lint, then the whole suite against real servers
	CODER_RING_TEST_PROFILE=full $(BIN)/python -m pytest

test-fast: venv  ## unit and contract tests: no worker process, about half a minute
	CODER_RING_TEST_PROFILE=fast $(BIN)/python -m pytest tests/unit tests/contract -m "not slow"

demo: venv  ## codes in one command: embedded SQLite + a Redis it starts itself
	$(BIN)/coder-ring demo

bench: venv  ## side-by-side benchmarks (real Redis and PostgreSQL from the env)
	$(BIN)/python -m bench

faults-long: venv  ## the fault-injection suite's long mode (100,000+ codes)
	CODER_RING_FAULT_CODES=100000 $(BIN)/python -m pytest tests/faults -s

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info

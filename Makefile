# Every target CI uses is here; .ci/run calls `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The exact releases .venv, and so CI, installs: pip, the build backend, the tools and every
# dependency the suite runs against. pyproject.toml keeps open ranges for users;
# `make constraints` moves the pins on purpose, `make test-latest` tries what they miss.
CONSTRAINTS := constraints.txt
LATEST := .venv-latest
PIN := .venv-pin

.PHONY: venv lint format typecheck test test-fast test-latest constraints demo bench \
	faults-long clean

$(BIN)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) --upgrade pip
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) --build-constraint $(CONSTRAINTS) \
		-e '.[dev]'
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
# Two pytest processes (pytest-xdist): the suite mostly waits on worker processes and
# servers. Each takes the next Redis database (tests/harness/shared.py); the tests timed
# under faults run one after another on one of them (tests/conftest.py).
test: lint  ## what CI runs: lint, then the whole suite against real servers
	CODER_RING_TEST_PROFILE=full $(BIN)/python -m pytest -n 2 --dist loadgroup

test-fast: venv  ## unit and contract tests: no worker process, about half a minute
	CODER_RING_TEST_PROFILE=fast $(BIN)/python -m pytest tests/unit tests/contract -m "not slow"

test-latest:  ## lint and the fast tests on today's newest releases, in .venv-latest (no pins)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip setuptools wheel
	$(LATEST)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e '.[dev]'
	@echo "releases newer than $(CONSTRAINTS) (move the pins with make constraints):"
	@$(LATEST)/bin/python -m pip freeze --all --exclude-editable \
		| grep -vxF -f $(CONSTRAINTS) || echo "  none"
	$(LATEST)/bin/ruff check .
	$(LATEST)/bin/ruff format --check .
	$(LATEST)/bin/mypy
	$(LATEST)/bin/python -m pytest tests/unit tests/contract -m "not slow"

constraints:  ## re-pin constraints.txt to today's newest releases; then make test, commit
	rm -rf $(PIN)
	$(PYTHON) -m venv $(PIN)
	$(PIN)/bin/python -m pip install -q --upgrade pip setuptools wheel
	$(PIN)/bin/python -m pip install -q --upgrade -e '.[dev]'
	{ grep '^#' $(CONSTRAINTS); $(PIN)/bin/python -m pip freeze --all --exclude-editable; } \
		> $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf $(PIN)

demo: venv  ## codes in one command: embedded SQLite + a Redis it starts itself
	$(BIN)/coder-ring demo

bench: venv  ## side-by-side benchmarks (real Redis and PostgreSQL from the env)
	$(BIN)/python -m bench

faults-long: venv  ## the fault suites' long modes (each 100,000+ codes; partitions need root)
	CODER_RING_FAULT_CODES=100000 $(BIN)/python -m pytest tests/faults -s
	CODER_RING_PARTITIONS_LONG=1 $(BIN)/python -m pytest tests/partitions/test_long.py -s

clean:
	rm -rf $(VENV) $(LATEST) $(PIN) .mypy_cache .ruff_cache .pytest_cache build *.egg-info

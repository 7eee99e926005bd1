# The README's commands. `make run` and `make test` each create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PG_TEST_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=

BIN := $(VENV)/bin

.PHONY: run test test-fast test-sqlite test-postgres chaos bench lint typecheck fmt lock clean screenshot

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installs take the exact versions of the lock files (`make lock` writes them from pyproject.toml).
$(VENV)/.installed-run: pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml requirements-dev.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/chronos dev

# The whole suite on SQLite, then on PostgreSQL when it is reachable
# (CHRONOS_REQUIRE_POSTGRES=1 makes an unreachable PostgreSQL a failure).
test: $(VENV)/.installed-dev
	$(MAKE) --no-print-directory test-sqlite
	@if $(BIN)/python -m tests.pg_reachable "$(PG_TEST_URL)"; then \
		$(MAKE) --no-print-directory test-postgres; \
	elif [ "$${CHRONOS_REQUIRE_POSTGRES:-0}" = "1" ]; then \
		echo "PostgreSQL at $(PG_TEST_URL) is not reachable and CHRONOS_REQUIRE_POSTGRES=1" >&2; exit 1; \
	else \
		echo "PostgreSQL not reachable: skipped the PostgreSQL run"; \
	fi

# The suite without the end-to-end tests (real agent and emulator processes), on SQLite.
test-fast: $(VENV)/.installed-dev
	env -u CHRONOS_TEST_DATABASE_URL $(BIN)/pytest -m "not e2e" $(PYTEST_ARGS)

test-sqlite: $(VENV)/.installed-dev
	env -u CHRONOS_TEST_DATABASE_URL $(BIN)/pytest $(PYTEST_ARGS)

test-postgres: $(VENV)/.installed-dev
	CHRONOS_TEST_DATABASE_URL="$(PG_TEST_URL)" $(BIN)/pytest $(PYTEST_ARGS)

# The seeded chaos test (tests/chaos): a private PostgreSQL, the NAS emulator and 3 replicas
# behind a round-robin balancer, CHAOS_SECONDS of faults, then the contract's promises checked.
# The same CHAOS_SEED plans the same jobs and faults. Skipped by every other target. Logs and
# the run file of the last run stay in CHAOS_DIR (emptied when the next run starts).
CHAOS_SECONDS ?= 120
CHAOS_SEED ?= 1
CHAOS_DIR ?= /tmp/chronos-chaos
chaos: $(VENV)/.installed-dev
	CHAOS_SECONDS=$(CHAOS_SECONDS) CHAOS_SEED=$(CHAOS_SEED) \
		$(BIN)/pytest -m chaos -s -p no:cacheprovider --basetemp=$(CHAOS_DIR) $(PYTEST_ARGS) tests/chaos

# Today's figures against a bare FastAPI + uvicorn app (bench/README.md): SQLite, then
# PostgreSQL at BENCH_DATABASE_URL when reachable (a fresh database per run). Not part of
# `make test`; installs wrk when missing and bench/requirements.txt (matplotlib) into the venv.
BENCH_DATABASE_URL ?= $(PG_TEST_URL)
$(VENV)/.installed-bench: bench/requirements.txt | $(VENV)/.installed-run
	$(BIN)/python -m pip install --quiet -r bench/requirements.txt
	touch $@

bench: $(VENV)/.installed-run $(VENV)/.installed-bench
	@command -v wrk >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get install -y wrk; else sudo apt-get install -y wrk; fi; }
	BENCH_DATABASE_URL="$(BENCH_DATABASE_URL)" $(BIN)/python -m bench.run

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# Re-resolve the lock files from pyproject.toml (needs network access to PyPI).
lock:
	$(PYTHON) -m pip install --quiet --target $(VENV)/uv uv
	$(VENV)/uv/bin/uv pip compile pyproject.toml --universal --python-version 3.11 \
		--no-header --quiet -o requirements.lock
	$(VENV)/uv/bin/uv pip compile pyproject.toml --group dev --universal --python-version 3.11 \
		--no-header --quiet -o requirements-dev.lock

# The README's dashboard screenshots: agent + NAS emulator as processes, a few jobs, Debian's Chromium.
screenshot: $(VENV)/.installed-dev
	$(BIN)/python -m tests.ui.screenshot docs/dashboard.png

fmt: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

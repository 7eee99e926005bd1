# The README's commands. `make run` and `make test` each create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PG_TEST_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=

BIN := $(VENV)/bin

.PHONY: run test test-sqlite test-postgres lint typecheck fmt clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e . --group dev
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

test-sqlite: $(VENV)/.installed-dev
	env -u CHRONOS_TEST_DATABASE_URL $(BIN)/pytest $(PYTEST_ARGS)

test-postgres: $(VENV)/.installed-dev
	CHRONOS_TEST_DATABASE_URL="$(PG_TEST_URL)" $(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

fmt: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

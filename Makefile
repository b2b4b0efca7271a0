# Two commands do all the setup on a fresh Debian machine with Python 3.11:
#   make run    start one engine node on a private redis-server (dev mode)
#   make test   ruff, mypy, pytest
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest bench redis-server clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

redis-server:
	@command -v redis-server >/dev/null 2>&1 || test -x /usr/bin/redis-server || \
	  { echo "installing redis-server (Debian package)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }

run: $(STAMP) redis-server
	$(BIN)/engine run --dev

lint: $(STAMP)
	$(BIN)/ruff check engine tests loadtest
	$(BIN)/ruff format --check engine tests loadtest

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) redis-server
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: $(STAMP) redis-server
	$(BIN)/python -m loadtest.bench_fanout

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

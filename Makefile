# Two commands do all the setup on a fresh Debian machine with Python 3.11:
#   make run    start one engine node per core on a private redis-server (dev mode)
#   make test   ruff, mypy, pytest (with the browser tests: installs Debian's chromium and the
#               npm packages in tests/browser when missing)
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BROWSER := tests/browser

.PHONY: run test lint typecheck pytest bench redis-server chromium node browser-deps screenshots clean

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

# the browser tests: Debian's chromium driven by the npm package playwright-core (never
# `npx playwright install`: it downloads a browser)
chromium:
	@test -x /usr/bin/chromium || \
	  { echo "installing chromium (Debian package)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

node:
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || \
	  { echo "installing nodejs and npm (Debian packages)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }

$(BROWSER)/node_modules/.installed: $(BROWSER)/package.json $(BROWSER)/package-lock.json | node
	cd $(BROWSER) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

browser-deps: chromium $(BROWSER)/node_modules/.installed

# docs/demo-viewer.png and docs/demo-console.png, from the showcase browser scenario
screenshots: $(STAMP) redis-server browser-deps
	@test -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-color-emoji; }
	SCREENSHOTS_DIR=$(CURDIR)/docs BROWSER_TESTS=required $(BIN)/pytest -q \
	  $(BROWSER)/test_browser.py -k screenshots

run: $(STAMP) redis-server
	$(BIN)/engine run --dev

lint: $(STAMP)
	$(BIN)/ruff check engine tests loadtest
	$(BIN)/ruff format --check engine tests loadtest

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) redis-server browser-deps
	BROWSER_TESTS=required $(BIN)/pytest -q

test: lint typecheck pytest

bench: $(STAMP) redis-server
	$(BIN)/python -m loadtest.bench_fanout

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# The two commands: `make run` (serve on embedded defaults) and `make test` (the whole suite).
# Both create .venv if missing and install what they need; nothing else is required.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: help run test lint typecheck tools format bench clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

run: $(STAMP) ## serve on the embedded defaults (SQLite + embedded Redis), print URL and a dev key
	$(BIN)/ticker-service serve

lint: $(STAMP) ## ruff (check + format), import-linter
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP) ## mypy --strict
	$(BIN)/mypy app

tools: $(STAMP) ## install what pip cannot: promtool (Debian's prometheus) and chromium for the console tests
	bash scripts/ensure-tools.sh $(BIN)
	bash scripts/ensure-browser.sh

test: lint typecheck tools ## lint, typecheck and the whole pytest suite with coverage (real PostgreSQL + Redis)
	rm -f .coverage .coverage.*
	$(BIN)/pytest --cov=app --cov-report=term-missing:skip-covered --cov-fail-under=85 -p no:cacheprovider

format: $(STAMP) ## apply ruff formatting and fixes
	$(BIN)/ruff check --fix app tests bench
	$(BIN)/ruff format app tests bench

# bench/echo_app.py and bench/loadgen.py are helpers the benchmarks start, and bench/profile.py
# reads py-spy's stacks: they are not benchmarks.
BENCHES := auth registry engine journal positions orders single parsing http_layer ticker webhooks scaleout console kite

bench: $(STAMP) ## run every benchmark under bench/ (see BENCHMARKS.md)
	for name in $(BENCHES); do $(BIN)/python bench/$$name.py || exit 1; done

clean: ## remove the virtualenv and local data
	rm -rf $(VENV) data .coverage .coverage.* .mypy_cache .ruff_cache

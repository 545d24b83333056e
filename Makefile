# Fiscus. `make demo` and `make test` are the two commands; both install what they need first.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
PG_BIN ?= /usr/lib/postgresql/15/bin

.PHONY: help install system-deps bench-deps demo test fuzz lint fmt bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/uv:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(BIN)/uv pyproject.toml uv.lock
	$(BIN)/uv sync --frozen --quiet
	@touch $@

# command:package; zbarimg decodes the QR codes of rendered PDFs (tests/documents); chromium drives the hosted payment page browser test (tests/pages), skipped without it
APT_TOOLS := pdftoppm:poppler-utils zbarimg:zbar-tools wrk:wrk chromium:chromium

system-deps: ## Debian packages the suite needs (PostgreSQL, poppler-utils, wrk, chromium), installed only when missing
	@missing=""; for pair in $(APT_TOOLS); do command -v "$${pair%%:*}" >/dev/null || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing (apt)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "could not install$$missing"; \
	  else echo "missing Debian packages:$$missing"; fi; \
	fi
	@if [ ! -x "$(PG_BIN)/initdb" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing PostgreSQL server binaries (apt)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null) \
	      || echo "PostgreSQL could not be installed: the PostgreSQL leg of the suite will be skipped"; \
	  else echo "no PostgreSQL binaries at $(PG_BIN): the PostgreSQL leg of the suite will be skipped"; fi; \
	fi

# Browser assets from the npm registry (package.json, package-lock.json): htmx is copied into the package's
# static folder and served by Fiscus itself at /static/vendor/; axe-core stays in node_modules for the tests.
VENDOR := src/fiscus/web/static/vendor
$(VENDOR)/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/htmx.min.js
	@touch $@

install: $(VENV)/.synced $(VENDOR)/.installed ## create .venv, install the locked dependencies and the web assets

demo: install ## seed the demo on SQLite (test mode), serve on 127.0.0.1:8000 with the worker and the test gateway; Ctrl-C stops all
	$(BIN)/fiscus db upgrade
	$(BIN)/fiscus demo

test: install system-deps ## the whole suite, on SQLite and on a throwaway PostgreSQL
	$(BIN)/python -m pytest -n 2 --dist loadgroup

fuzz: install system-deps ## schemathesis (every phase, stateful too) on SQLite and PostgreSQL, >= 5,000 cases each
	FISCUS_FUZZ_PHASES=examples,coverage,fuzzing,stateful FISCUS_FUZZ_EXAMPLES=30 FISCUS_FUZZ_MIN_CASES=5000 $(BIN)/python -m pytest -n 2 -s -p no:cacheprovider tests/api/test_fuzz.py

lint: install ## ruff and mypy
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

fmt: install ## format the code
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench-deps: install system-deps ## what only the benchmarks need: playwright (bench group) and Debian's chromium
	$(BIN)/uv sync --frozen --quiet --group bench
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: bench/pdf.py will skip the Chromium comparison"; }

bench: bench-deps ## benchmarks that print figures (billing run, API reads, PDFs)
	$(BIN)/python bench/billing_run.py
	$(BIN)/python bench/api_read.py
	$(BIN)/python bench/pdf.py

clean: ## remove the virtualenv, caches and the demo database
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache fiscus.db fiscus.db-wal fiscus.db-shm var

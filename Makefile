# Village Ledger: the commands a fresh machine needs (GNU make and Python 3.11+).
#
#   make run     set up .venv, migrate village.db, serve the API on 127.0.0.1:8000
#   make demo    set up .venv, migrate village.db, one village day over the signed API, integrity check
#   make test    set up .venv with the test tools, lint, then pytest (SQLite + PostgreSQL)
#   make screens the station and console page tests, their screenshots copied to docs/screens
#   make lint    ruff check, ruff format --check, mypy --strict ledger/ api/ webhooks/ sms/ reconciliation/ vledger/ tools/
#   make bench   workload W1 against $(BENCH_DATABASE)
#   make clean   remove .venv and caches (village.db is data: it is left alone)
#
# Variables: DATABASE (make run, make demo), HOST and PORT (make run), BENCH_DATABASE
# (make bench), PYTEST_ARGS (make test),
# PYTHON (the interpreter that creates .venv).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --quiet --disable-pip-version-check
VLEDGER := $(BIN)/vledger

DATABASE ?= sqlite:///village.db
BENCH_DATABASE ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=

# Stamps: reinstall only when pyproject.toml changes.
INSTALLED := $(VENV)/.installed
INSTALLED_TEST := $(VENV)/.installed-test

.PHONY: help run migrate demo test lint bench clean screens

help:
	@sed -n 's/^#   make /make /p' $(firstword $(MAKEFILE_LIST))

# --- environment -------------------------------------------------------------------

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "make: no python3.11 or python3 on PATH" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "make: $(PYTHON) is older than Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	@touch $@

$(INSTALLED_TEST): pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[test]'
	@touch $@ $(INSTALLED)

# --- run ---------------------------------------------------------------------------

# `make run` is the one command on a bare machine: the signed API on a SQLite file.
HOST ?= 127.0.0.1
PORT ?= 8000

run: migrate
	$(VLEDGER) serve --host '$(HOST)' --port '$(PORT)' --database '$(DATABASE)'

migrate: $(INSTALLED)
	$(VLEDGER) migrate --database '$(DATABASE)'

demo: migrate
	$(VLEDGER) demo --database '$(DATABASE)'

# --- checks ------------------------------------------------------------------------

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

# Screenshots for the README: only this target writes docs/screens (a test run leaves
# them in the tests' tmp folders).
screens: $(INSTALLED_TEST)
	VLEDGER_SCREENS_DIR='$(CURDIR)/docs/screens' $(BIN)/pytest -q -p no:cacheprovider \
		tests/test_station_app.py tests/test_station_screens.py tests/test_station_offline.py \
		tests/test_console_app.py tests/test_console_pages.py \
		tests/test_console_demo.py

lint: $(INSTALLED_TEST)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict ledger/ api/ webhooks/ sms/ reconciliation/ vledger/ tools/

bench: $(INSTALLED)
	$(BIN)/python -m bench.w1 --database '$(BENCH_DATABASE)'

# --- housekeeping ------------------------------------------------------------------

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

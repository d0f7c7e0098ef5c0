# Two set-up commands: `make run` (the app, a worker and a local Polar) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint

install: $(STAMP)

# Re-runs only when pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./polar_emulator -e '.[dev]'
	@touch $(STAMP)

run: install
	$(BIN)/python -m app.devserver

test: install
	$(BIN)/pytest -n 2

lint: install
	$(BIN)/ruff check app provisioning polar_emulator tests wsgi.py
	$(BIN)/ruff format --check app polar_emulator tests wsgi.py

# Two set-up commands: `make run` (the app, a worker and a local Polar) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint

install: $(STAMP)

# Re-runs only when a pyproject.toml changes.
$(STAMP): pyproject.toml polar_emulator/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./polar_emulator -e '.[dev]'
	@touch $(STAMP)

run: install
	$(BIN)/python -m app.devserver

test: install
	$(BIN)/pytest -n 2

# Style, types, layering and import cycles, over the platform and the local Polar.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd polar_emulator && ../$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m tools.import_cycles app provisioning polar_emulator

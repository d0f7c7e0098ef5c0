# Two set-up commands: `make run` (the app, a worker and a local Polar) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint lock

install: $(STAMP)

# Installs the locked releases (requirements/dev.txt, every file checked against its hash), then the
# platform and the local Polar themselves, editable, without dependencies. Re-runs only when the lock
# or a pyproject.toml changes.
$(STAMP): requirements/dev.txt pyproject.toml polar_emulator/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "[make install] installing the locked dependencies into $(VENV) (a few minutes the first time)"
	$(BIN)/python -m pip install --progress-bar on --require-hashes -r requirements/dev.txt
	$(BIN)/python -m pip install --progress-bar on --no-deps -e ./polar_emulator -e .
	@touch $(STAMP)

# Re-lock after changing dependencies in a pyproject.toml: requirements/base.txt (the platform's
# runtime dependencies) and requirements/dev.txt (everything `make install` installs), both hashed,
# resolved for every platform and Python 3.11+.
LOCK := $(BIN)/uv pip compile --universal --python-version 3.11 --generate-hashes --no-header --quiet
lock: install
	$(LOCK) pyproject.toml -o requirements/base.txt
	$(LOCK) requirements/dev.in --constraint requirements/base.txt \
		--no-emit-package connect-polar --no-emit-package connect-polar-emulator -o requirements/dev.txt

run: install
	$(BIN)/python -m app.devserver

test: install
	$(BIN)/pytest -n 2

# Style, types, layering, import cycles and known vulnerabilities of the locked dependencies.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd polar_emulator && ../$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m tools.import_cycles app provisioning polar_emulator
	$(BIN)/python -m tools.audit

# Every target builds .venv from pyproject.toml on first use, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench sim clean lock

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The real bot against both simulators, with a live view; Ctrl-C ends it with a summary.
demo: $(STAMP)
	$(BIN)/rcstatus-bot demo

sim: $(STAMP)
	$(BIN)/rcstatus-bot sim

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench
	$(BIN)/ruff format --check bot tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format bot tests bench
	$(BIN)/ruff check --fix bot tests bench

test: lint
	$(BIN)/pytest -n auto

# requirements.lock pins every runtime dependency (and theirs) that pyproject.toml allows; Heroku
# and the Dockerfile install it through requirements.txt. Pins stay where they are unless
# pyproject.toml no longer allows them; `make lock LOCK_FLAGS=--upgrade` moves them all forward.
lock: $(STAMP)
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links \
		$(LOCK_FLAGS) --output-file requirements.lock pyproject.toml

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

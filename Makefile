# The two entry points of the README: `make reproduce` (main job) and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1

.PHONY: setup reproduce test lint

setup:
	VENV=$(VENV) bash scripts/setup.sh

reproduce: setup
	$(BIN)/mixq reproduce --profile mini

test: setup
	$(BIN)/ruff check .
	MIXQ_QUIET=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .

# The two entry points of the README: `make reproduce` (main job) and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1

.PHONY: setup reproduce test lint check-book

setup:
	VENV=$(VENV) bash scripts/setup.sh

reproduce: setup
	$(BIN)/mixq reproduce --profile mini

test: setup
	$(BIN)/ruff check .
	MIXQ_QUIET=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)
	# Every notebook on the tiny `smoke` profile, then the book with warnings as errors.
	MIXQ_QUIET=1 MIXQ_RESULTS=results/smoke $(BIN)/mixq reproduce --profile smoke --strict

# Open every page of the built book in headless Chromium: missing images, broken links, console errors.
check-book: setup
	$(BIN)/python scripts/check_book.py --html _build/html --screenshots _build/screenshots

lint: setup
	$(BIN)/ruff check .

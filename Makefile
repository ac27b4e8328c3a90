# Two commands for a fresh machine: `make run` (dev server) and `make test` (whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/kes-flask server --dev

lint: $(STAMP)
	$(BIN)/ruff check kes_flask tests bench
	$(BIN)/ruff format --check kes_flask tests bench

test: $(STAMP) lint
	$(BIN)/python -m pytest

# kes-flask side by side with Go KES (docs/benchmarks.md); BENCH_ARGS=--quick for a smoke run.
bench: $(STAMP)
	$(BIN)/python -c 'import matplotlib' 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/compare.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info

# `make run` and `make test` set up .venv themselves on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# MNIST root for tests and benchmarks (the folder that holds MNIST/raw/); CI points it at ../shared/data.
SEQMNIST_DATA ?= $(CURDIR)/data
export SEQMNIST_DATA

.PHONY: run test lint format bench browser-deps clean

$(BIN)/seqmnist: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[plots]"
	touch $@

$(VENV)/.test-deps: $(BIN)/seqmnist
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

run: $(BIN)/seqmnist
	$(BIN)/seqmnist train --out runs/default --overwrite
	$(BIN)/seqmnist evaluate runs/default

# Lint first (fast, and what CI enforces), then the whole suite, browser tests included.
test: lint browser-deps
	$(BIN)/python -m pytest -q

lint: $(VENV)/.test-deps
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(VENV)/.test-deps
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

# The browser tests drive Debian's Chromium. As root it is installed with apt-get; otherwise
# this stops with the one command to run.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "make test: the browser tests need Chromium; run: sudo apt-get install chromium" >&2; exit 1; \
	  fi; }

# The whole CPU benchmark; run it on an otherwise idle machine. Results: benchmarks/README.md.
bench: $(VENV)/.test-deps
	$(BIN)/python benchmarks/bench_cpu.py
	$(BIN)/python benchmarks/bench_lstm_ceiling.py
	$(BIN)/python benchmarks/bench_orders.py
	test -f runs/bench-default/checkpoint_best.pt || $(BIN)/seqmnist train --out runs/bench-default --quiet --no-plots
	$(BIN)/python benchmarks/bench_predict.py runs/bench-default
	$(BIN)/python benchmarks/bench_serve.py runs/bench-default

clean:
	rm -rf $(VENV) runs

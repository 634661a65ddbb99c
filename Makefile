# `make run` and `make test` set up .venv themselves on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# MNIST root for tests and benchmarks (the folder that holds MNIST/raw/); CI points it at ../shared/data.
SEQMNIST_DATA ?= $(CURDIR)/data
export SEQMNIST_DATA

.PHONY: run test bench browser-deps clean

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

test: $(VENV)/.test-deps
	$(BIN)/python -m pytest -q

# The whole CPU benchmark; run it on an otherwise idle machine. Results: benchmarks/README.md.
bench: $(VENV)/.test-deps
	$(BIN)/python benchmarks/bench_cpu.py
	$(BIN)/python benchmarks/bench_lstm_ceiling.py
	test -f runs/bench-default/checkpoint_best.pt || $(BIN)/seqmnist train --out runs/bench-default --quiet --no-plots
	$(BIN)/python benchmarks/bench_predict.py runs/bench-default
	$(BIN)/python benchmarks/bench_serve.py runs/bench-default

clean:
	rm -rf $(VENV) runs

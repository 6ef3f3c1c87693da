# factory: the two everyday commands are `make run` and `make test`.
# Both create (or reuse) the virtualenv in $(VENV). torch is installed FIRST, pinned, so no
# later requirement can pull a different (CUDA) build on a machine without a GPU.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup run test test-all bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)  ## the default experiment on the embedded dataset
	$(PY) run.py $(ARGS)

test: $(STAMP)  ## the test suite (slow end-to-end subprocess tests excluded)
	$(PY) -m pytest -q $(ARGS)

test-all: $(STAMP)  ## every test, including slow multirun / sweep subprocess tests
	$(PY) -m pytest -q -m "not benchmark" $(ARGS)

bench: $(STAMP)  ## speed and memory figures (prints; not part of `make test`)
	$(PY) -m pytest -q -s -m benchmark tests/benchmarks $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check factory hydra_plugins tests run.py

clean:
	rm -rf outputs multirun .pytest_cache

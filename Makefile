# keras-lpc: `make demo` and `make test` do the whole set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.keras-lpc-installed
BACKENDS ?= tensorflow jax torch
PYTEST_ARGS ?=

.PHONY: install demo test test-one lint format docs bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch 2.13.0's CPU wheel and tensorflow-cpu first, so that the extras
# resolve to them instead of pulling CUDA builds.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0" "tensorflow-cpu>=2.16"
	$(PY) -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/keras-lpc demo

# The whole suite once per backend, each in its own process; fails if any fails.
test: install
	@status=0; for b in $(BACKENDS); do \
	  echo "=== KERAS_BACKEND=$$b"; \
	  KERAS_BACKEND=$$b $(PY) -m pytest tests keras_lpc $(PYTEST_ARGS) || status=1; \
	done; exit $$status

lint: install
	$(VENV)/bin/ruff check keras_lpc tests benchmarks examples
	$(VENV)/bin/ruff format --check keras_lpc tests benchmarks examples

format: install
	$(VENV)/bin/ruff format keras_lpc tests benchmarks examples
	$(VENV)/bin/ruff check --fix keras_lpc tests benchmarks examples

docs: install
	$(VENV)/bin/mkdocs build --strict

bench: install
	for b in $(BACKENDS); do KERAS_BACKEND=$$b $(PY) benchmarks/overhead.py || exit 1; done

clean:
	rm -rf $(VENV) build dist site *.egg-info .pytest_cache

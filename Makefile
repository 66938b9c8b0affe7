# keras-lpc: `make demo` and `make test` do the whole set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.keras-lpc-installed
BACKENDS ?= tensorflow jax torch
PYTEST_ARGS ?=
# pytest-xdist workers per backend (CI has 2 cores; 0 runs the suite in one process).
# --dist loadscope keeps each test module on one worker, so a module's shared
# fixture (a demo run, a trained model) is built once, not once per worker;
# --durations=25 lists the slowest tests in the CI log.
PYTEST_WORKERS ?= 2

.PHONY: install demo test test-one lint format docs bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch 2.13.0's CPU wheel and tensorflow-cpu first, so that the extras
# resolve to them instead of pulling CUDA builds. Then the [hub] extra without
# tensorflow-text (it would pull the full tensorflow wheel over tensorflow-cpu)
# and kagglehub/kagglesdk (only for downloading presets from Kaggle):
# keras-hub's other dependencies first, keras-hub itself last with --no-deps.
# pip checks the dependencies of what it installs only when it resolves them,
# so in this order it reports nothing (in the other order it printed an ERROR
# line naming the three); `pip check` still names them.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0" "tensorflow-cpu>=2.16"
	$(PY) -m pip install --quiet -e ".[all,dev]"
	$(PY) -m pip install --quiet regex tokenizers sentencepiece
	$(PY) -m pip install --quiet --no-deps "keras-hub>=0.20"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/keras-lpc demo

# Lint and the strict docs build once, then the whole suite once per backend,
# each in its own process; fails if any of them fails (all run regardless).
test: install
	@status=0; \
	echo "=== ruff check, ruff format --check"; \
	$(MAKE) --no-print-directory lint || status=1; \
	echo "=== mkdocs build --strict"; \
	$(MAKE) --no-print-directory docs || status=1; \
	for b in $(BACKENDS); do \
	  echo "=== KERAS_BACKEND=$$b"; \
	  KERAS_BACKEND=$$b $(PY) -m pytest tests keras_lpc keras_lpc_cli.py -n $(PYTEST_WORKERS) --dist loadscope --durations=25 $(PYTEST_ARGS) || status=1; \
	done; exit $$status

# Both checks run, so one CI log shows every problem.
lint: install
	@status=0; \
	$(VENV)/bin/ruff check keras_lpc keras_lpc_cli.py tests benchmarks examples || status=1; \
	$(VENV)/bin/ruff format --check keras_lpc keras_lpc_cli.py tests benchmarks examples || status=1; \
	exit $$status

format: install
	$(VENV)/bin/ruff format keras_lpc keras_lpc_cli.py tests benchmarks examples
	$(VENV)/bin/ruff check --fix keras_lpc keras_lpc_cli.py tests benchmarks examples

# NO_MKDOCS_2_WARNING silences mkdocs-material's end-of-life banner.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: install
	for b in $(BACKENDS); do KERAS_BACKEND=$$b $(PY) benchmarks/overhead.py || exit 1; done

clean:
	rm -rf $(VENV) build dist site *.egg-info .pytest_cache

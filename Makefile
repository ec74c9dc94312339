# adaptrl — the two commands of the quick start:
#   make demo   install into .venv, then a short real MAML meta-training + evaluation + plots
#   make test   install into .venv, then the linter (ruff), the type checker (mypy) and the
#               test suite (slow learning and fault-injection tests: make test-slow)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch is pinned by constraints.txt (the CPU wheel); a local wheel folder is used when present
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt $(FIND_LINKS)

.PHONY: install demo test test-slow bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e ".[test,tensorboard,mujoco,metaworld,export,wandb,continual,ray,optuna]"
	touch $@

install: $(VENV)/.installed

demo: install
	rm -rf runs/demo
	$(VENV)/bin/adaptrl train configs/demo-navigation.yaml --run-dir runs/demo

test: install
	$(PY) -m ruff check src tests benchmarks examples
	$(PY) -m mypy
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	$(PY) benchmarks/bench_navigation.py
	$(PY) benchmarks/bench_maml.py

clean:
	rm -rf $(VENV) runs .pytest_cache

# Two commands set everything up on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first (CPU wheel 2.13.0), then the project in editable mode with its test extras.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/scfguess demo

# One OpenMP thread per test process: the SCFbench tests run several worker processes at once.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q

test-slow: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) build *.egg-info

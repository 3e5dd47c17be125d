# `make test` / `make demo` create .venv on first use and install the package with the pinned torch wheels.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench clean

$(STAMP): setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

demo: $(STAMP)
	$(PY) -m lavis_ib.demo

bench: $(STAMP)
	$(PY) bench/generate.py
	$(PY) bench/llm_loading.py

clean:
	rm -rf $(VENV) build dist *.egg-info

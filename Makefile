# Two commands do all the set-up on a fresh machine:
#   make demo   runs the main job on the local sandbox (no API key, no network)
#   make test   runs the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.llmlab-installed

.PHONY: demo test install browser soak bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --user --name python3 >/dev/null 2>&1 || true
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m llmlab.demo

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

soak: $(STAMP)
	$(PY) benchmarks/soak.py

bench: $(STAMP)
	$(PY) benchmarks/store_writes.py

clean:
	rm -rf $(VENV) reports/*.html reports/*.yaml reports/*.png reports/*.duckdb*

# Podium — set-up, demo, tests and benchmarks. `make demo` and `make test` need nothing else.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo lint test test-fast bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/podium demo

lint: install
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest

test-fast: lint
	$(PY) -m pytest -m "not slow"

bench: install
	$(PY) bench/trials.py
	$(PY) bench/search_efficiency.py
	$(PY) bench/overhead.py
	$(PY) bench/warm_start.py
	$(PY) bench/quantization.py
	$(PY) bench/tvm_vs_ort.py
	$(PY) bench/leaderboard_load.py
	$(PY) bench/leaderboard_fuzz.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info

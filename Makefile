# Podium — set-up, demo, tests and benchmarks. `make demo` and `make test` need nothing else.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo lint test test-fast test-other-host bench clean

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
	$(MAKE) --no-print-directory test-other-host

# The host_sensitive tests again as if on the other CPU vendor's machine (both where this one
# is neither AMD nor Intel; PODIUM_LOCAL_PROFILE, see README), so no answer hangs on this host.
test-other-host: install
	@set -e; vendor=$$(env -u PODIUM_LOCAL_PROFILE $(PY) -c \
	  'from tuner.hardware import local_host; print(local_host().vendor)'); \
	case "$$vendor" in \
	  AuthenticAMD) others="aws-c7i.large" ;; \
	  GenuineIntel) others="aws-c7a.large" ;; \
	  *) others="aws-c7a.large aws-c7i.large" ;; \
	esac; \
	for profile in $$others; do \
	  echo "host_sensitive tests on a simulated $$profile host (this one: $${vendor:-unknown})"; \
	  PODIUM_LOCAL_PROFILE=$$profile $(PY) -m pytest -q -m host_sensitive -p no:cacheprovider \
	    || exit 1; \
	done

test-fast: lint
	$(PY) -m pytest -m "not slow"

bench: install
	$(PY) bench/trials.py
	$(PY) bench/search_efficiency.py
	$(PY) bench/overhead.py
	$(PY) bench/warm_start.py
	$(PY) bench/quantization.py
	$(PY) bench/tvm_vs_ort.py
	$(PY) bench/backends.py
	$(PY) bench/budget.py
	$(PY) bench/leaderboard_load.py
	$(PY) bench/leaderboard_fuzz.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info

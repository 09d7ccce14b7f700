"""Shared fixtures: a hermetic PODIUM_HOME per test session and the digits workload."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Set before any Podium module reads it; every test in the session shares one cache.
os.environ.setdefault("PODIUM_HOME", tempfile.mkdtemp(prefix="podium-test-home-"))
os.environ.pop("PODIUM_NODE_PROFILES", None)

from tuner.measure import Protocol

# The real protocol's minimums, with the latency phase capped so slow artifacts stay quick.
FAST_PROTOCOL = Protocol(warmup_s=0.2, latency_s=0.3, max_latency_s=5.0, throughput_s=0.3)


@pytest.fixture(scope="session")
def podium_home() -> Path:
    return Path(os.environ["PODIUM_HOME"])


@pytest.fixture(scope="session")
def digits():
    import workloads

    return workloads.get("digits")


@pytest.fixture(scope="session")
def protocol() -> Protocol:
    return FAST_PROTOCOL


@pytest.fixture
def busy_core0():
    """Another process spinning on core 0 while the test runs: a measurement pinned there
    (a 1-thread trial's default core) shares it and must notice."""
    import subprocess
    import sys

    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("needs core pinning")
    hog = subprocess.Popen([sys.executable, "-c",
                            "import os\nos.sched_setaffinity(0, {0})\nwhile True: pass"])
    try:
        yield
    finally:
        hog.kill()
        hog.wait()

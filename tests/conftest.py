"""Shared fixtures: a hermetic PODIUM_HOME per test session and the digits workload."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Set before any Podium module reads it; every test in the session shares one cache.
os.environ.setdefault("PODIUM_HOME", tempfile.mkdtemp(prefix="podium-test-home-"))
os.environ.pop("PODIUM_NODE_PROFILES", None)
# A search re-measures its best three side by side before it reports (tuner.search.confirm):
# a dozen more worker processes per search. Tests of the search mechanics skip it; the
# tests of confirmation ask for it.
os.environ.setdefault("PODIUM_CONFIRM_TOP", "0")

from tuner.trial.measure import Protocol

# The real protocol's minimums, with the latency phase capped so slow artifacts stay quick.
FAST_PROTOCOL = Protocol(warmup_s=0.2, latency_s=0.3, max_latency_s=5.0, throughput_s=0.3)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under a simulated host ($PODIUM_LOCAL_PROFILE) only host_sensitive tests run: the rest
    measure on, or run code built for, the local host, which is not this machine then."""
    simulated = os.environ.get("PODIUM_LOCAL_PROFILE", "").strip()
    if not simulated:
        return
    skip = pytest.mark.skip(reason=f"PODIUM_LOCAL_PROFILE={simulated}: this test measures or "
                                   "runs code built for the local host; only host_sensitive "
                                   "tests run under a simulated one")
    for item in items:
        if "host_sensitive" not in item.keywords:
            item.add_marker(skip)


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
def local_host():
    """Pin the local host a test reasons about: ``local_host("aws-c7a.large")`` simulates that
    profile's host (``$PODIUM_LOCAL_PROFILE``), ``local_host(None)`` the real machine (for
    code built for and run on it). Returns the host; both are undone after the test."""
    from tuner import hardware

    with pytest.MonkeyPatch.context() as patch:

        def pin(profile: str | None) -> hardware.Host:
            if profile is None:
                patch.delenv(hardware.LOCAL_PROFILE_ENV, raising=False)
            else:
                patch.setenv(hardware.LOCAL_PROFILE_ENV, profile)
            hardware.reset_detection()
            return hardware.local_host()

        yield pin
    hardware.reset_detection()


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

"""Replay a measured table instead of measuring: the search loop without the hardware.

:class:`TableExecutor` answers every submitted configuration from a table of TrialResults
measured earlier (keyed by configuration digest). Benchmarks use it to compare samplers
over many seeds against one measurement of the full grid, and tests use it to check the
search logic quickly. A configuration missing from the table is a failed trial.
"""

from __future__ import annotations

import time
from typing import Any

from tuner.search.executor import Executor, Running
from tuner.trial.results import TrialResult
from workloads.base import Workload


class TableExecutor(Executor):
    """An executor whose "measurements" are lookups in ``table`` (digest → TrialResult)."""

    remeasures = False

    def __init__(self, table: dict[str, TrialResult], *, profiles: dict[str, int]) -> None:
        self.table = table
        self.profiles = profiles  # profile → CPUs of its (single) node
        self.running: dict[Any, Running] = {}
        self.order: list[str] = []  # digests in the order they were "measured"

    def targets(self) -> dict[str, int]:
        return dict.fromkeys(self.profiles, 1)

    def max_cpus(self, profile: str) -> int:
        return self.profiles.get(profile, 0)

    def submit(self, key: Any, workload: Workload, config: Any, *,
               seed: int | None = None, gates: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        handle = object()
        self.running[handle] = Running(key=key, config=config, submitted=now, deadline=now,
                                       ref=handle)

    def wait(self, timeout_s: float = 1.0) -> list[tuple[Running, TrialResult | str]]:
        done: list[tuple[Running, TrialResult | str]] = []
        for handle, running in list(self.running.items()):
            del self.running[handle]
            digest = running.config.digest()
            self.order.append(digest)
            result = self.table.get(digest)
            done.append((running, result if result is not None
                         else f"configuration {digest} is not in the replayed table"))
        return done

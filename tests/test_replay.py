"""The search loop over a replayed table: fast checks of sampler and dedupe logic."""

from __future__ import annotations

import pytest

from tuner.api import optimize
from tuner.config import Configuration
from tuner.replay import TableExecutor
from tuner.results import HardwareRef, Metrics, Stability, TrialResult, TrialState, WorkloadRef
from tuner.search import MEMORY
from tuner.space import default_space

SPACE = {"backend": "ort", "batch": [1, 8], "threads": [1, 2]}


def _table(workload) -> dict[str, TrialResult]:
    """A synthetic table: int8 is fast but loses quality on the linear variant."""
    table = {}
    space = default_space(workload.variants, hardware=["local"], cores=2).restrict(SPACE)
    for index, config in enumerate(space.configurations()):
        latency = 1.0 + index % 7 + (0.5 if config.precision.value == "fp32" else 0.0)
        quality = 0.9 if config.variant == "linear" else 0.98
        table[config.digest()] = TrialResult(
            podium_version="0", trial_id=f"t{index}", state=TrialState.COMPLETE,
            workload=WorkloadRef(name=workload.name, sha256=workload.sha256,
                                 variant=config.variant, variant_sha256="x", metric="accuracy"),
            config=config.as_dict(), config_digest=config.digest(),
            hardware=HardwareRef(profile="local", fingerprint={"x": 1}), packages={},
            metrics=Metrics(latency_p50_ms=latency, latency_p90_ms=latency,
                            latency_p99_ms=latency, quality=quality,
                            quality_ratio=quality / 0.98, stability=Stability.STABLE, cv=0.01))
    return table


@pytest.mark.parametrize("sampler", ["auto", "nsga2", "random", "grid"])
def test_replayed_search_never_measures_a_configuration_twice(digits, sampler):
    table = _table(digits)
    baseline = Configuration(variant=digits.reference, threads=2).normalized()
    table[baseline.digest()] = next(iter(table.values())).model_copy(
        update={"config_digest": baseline.digest(), "trial_id": "base"})
    executor = TableExecutor(table, profiles={"local": 2})
    result = optimize(digits, ["latency_p90_ms"], ["quality_ratio >= 0.99"], trials=20,
                      space=SPACE, sampler=sampler, seed=1, storage=MEMORY, study="r",
                      executor=executor)
    assert len(executor.order) == len(set(executor.order))
    assert result.best is not None and result.best.workload.variant != "linear"
    assert all(r.metrics.quality_ratio >= 0.99 for r in result.feasible)


def test_same_seed_same_search(digits):
    orders = []
    for _ in range(2):
        executor = TableExecutor(_table(digits), profiles={"local": 2})
        optimize(digits, ["latency_p90_ms"], [], trials=12, space=SPACE, seed=3,
                 storage=MEMORY, study="r", executor=executor)
        orders.append(executor.order)
    assert orders[0] == orders[1]

"""The search loop over a replayed table: fast checks of sampler and dedupe logic."""

from __future__ import annotations

import pytest

from tuner.search.optimize import optimize
from tuner.search.replay import TableExecutor
from tuner.search.space import default_space
from tuner.search.study import MEMORY
from tuner.trial.config import Configuration, numerics_digest
from tuner.trial.results import (
    HardwareRef,
    Metrics,
    Stability,
    TrialResult,
    TrialState,
    WorkloadRef,
)

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


@pytest.mark.parametrize("sampler", ["auto", "random"])
def test_repeats_are_free_and_a_small_space_is_measured_once_then_ends(digits, sampler):
    """A 6-configuration space: budget 6 measures all six (a repeat costs nothing), and
    budget 40 measures the same six, then stops."""
    space = {"backend": "ort", "batch": 1, "threads": [1, 2], "variant": "mlp-64",
             "precision": ["fp32", "fp16", "int8-dynamic"], "per_channel": False,
             "int8_keep_fp32": 0, "int8_op_types": "all", "ort_graph_optimization": "all"}
    configs = default_space(digits.variants, hardware=["local"],
                            cores=2).restrict(space).configurations()
    table = _table(digits)
    for index, config in enumerate(configs):
        table[config.digest()] = next(iter(table.values())).model_copy(
            update={"config_digest": config.digest(), "trial_id": f"s{index}",
                    "config": config.as_dict()})
    baseline = Configuration(variant=digits.reference, threads=2).normalized()
    table[baseline.digest()] = next(iter(table.values())).model_copy(
        update={"config_digest": baseline.digest(), "trial_id": "base"})
    for budget in (6, 40):  # exactly the budget, then more than the space holds
        executor = TableExecutor(table, profiles={"local": 2})
        optimize(digits, ["latency_p90_ms"], [], trials=budget, space=space, sampler=sampler,
                 seed=2, storage=MEMORY, study="r", executor=executor)
        assert sorted(executor.order[1:]) == sorted(c.digest() for c in configs)


def test_exploring_after_a_repeat_steps_one_decision_from_the_incumbent(digits):
    import random

    from tuner.search.loop import _one_step

    space = default_space(digits.variants, hardware=["local"], cores=2).restrict(SPACE)
    incumbent = Configuration(variant="mlp-64", threads=1, precision="int8-static",
                              calibration="entropy", hardware="local").normalized()
    around = space.params_for(incumbent)
    rng = random.Random(0)
    moved = space.build(_one_step(around, "threads", rng))
    assert moved.threads == 2
    assert moved.as_dict() | {"threads": 1} == incumbent.as_dict()
    # Changing a decision that opens other branches draws only what the incumbent lacks.
    for _ in range(10):
        moved = space.build(_one_step(around, "ort_precision", rng))
        assert moved.precision != incumbent.precision
        assert (moved.variant, moved.threads, moved.batch) == ("mlp-64", 1, 1)


def _space_table(digits, space: dict, *, linear: dict) -> tuple[list, dict[str, TrialResult]]:
    """Every configuration of ``space``, and a table of them plus the baseline: quality 1.0,
    p90 rising with the index; the linear variant's rows take ``linear`` (its ``metrics``
    entry updates the metrics; None leaves none, as a failed trial has)."""
    configs = default_space(digits.variants, hardware=["local"],
                            cores=2).restrict(space).configurations()
    template = next(iter(_table(digits).values()))
    table = {}
    for index, config in enumerate([*configs, Configuration(variant=digits.reference,
                                                            threads=2).normalized()]):
        changes = dict(linear) if config.variant == "linear" else {}
        metrics = template.metrics.model_copy(update={"quality_ratio": 1.0,
                                                      "latency_p90_ms": 1.0 + index})
        if "metrics" in changes:
            extra = changes.pop("metrics")
            metrics = Metrics() if extra is None else metrics.model_copy(update=extra)
        table[config.digest()] = template.model_copy(update={
            "config_digest": config.digest(), "trial_id": f"s{index}",
            "config": config.as_dict(), "metrics": metrics, **changes})
    return configs, table


@pytest.mark.parametrize("sampler", ["auto", "grid"])
def test_a_thread_twin_of_a_quality_failure_is_never_measured(digits, sampler):
    """The linear variant fails quality; its configurations on the other thread count
    compute the same numbers, so the search answers them from the failure instead of
    measuring — and still ends once nothing else is left (a budget it cannot use)."""
    space = {"backend": "ort", "batch": 1, "threads": [1, 2], "variant": ["linear", "mlp-64"],
             "precision": ["fp32", "fp16", "int8-dynamic"], "per_channel": False,
             "int8_keep_fp32": 0, "int8_op_types": "all", "ort_graph_optimization": "all"}
    # 0.985: a narrow miss, so each artifact decides for itself (a wide one decides for
    # the whole variant, see the next test).
    configs, table = _space_table(digits, space, linear={"metrics": {"quality_ratio": 0.985}})
    executor = TableExecutor(table, profiles={"local": 2})
    result = optimize(digits, ["latency_p90_ms"], ["quality_ratio >= 0.99"], trials=1000,
                      space=space, sampler=sampler, seed=1, storage=MEMORY, study="r",
                      executor=executor)
    measured = [table[d] for d in executor.order[1:]]
    groups: dict[str, list] = {}
    for r in measured:
        groups.setdefault(numerics_digest(Configuration.parse(r.config)), []).append(r)
    assert len(groups) == len(configs) // 2  # every group of numbers was measured …
    for group in groups.values():  # … once if it failed quality, on both thread counts if not
        assert len(group) == (1 if group[0].config["variant"] == "linear" else 2)
    assert len(executor.order) == len(set(executor.order))
    assert result.best is not None and result.best.config["variant"] == "mlp-64"
    assert len(result.results) == len(measured)  # an inferred answer is no result of its own


@pytest.mark.parametrize("sampler", ["auto", "grid"])
def test_a_variant_whose_fp32_misses_quality_widely_is_settled_at_every_precision(digits,
                                                                                 sampler):
    """The linear variant's fp32 is at 0.9 of the reference under a 0.99 floor: once it is
    measured, no other configuration of that variant is (lower precisions do not climb
    that far above their fp32); the search still ends and finds the best elsewhere."""
    space = {"backend": "ort", "batch": 1, "threads": [1, 2], "variant": ["linear", "mlp-64"],
             "precision": ["fp32", "fp16", "int8-dynamic"], "per_channel": False,
             "int8_keep_fp32": 0, "int8_op_types": "all", "ort_graph_optimization": "all"}
    configs, table = _space_table(digits, space, linear={"metrics": {"quality_ratio": 0.9}})
    executor = TableExecutor(table, profiles={"local": 1})  # one at a time: a strict order
    result = optimize(digits, ["latency_p90_ms"], ["quality_ratio >= 0.99"], trials=1000,
                      space=space, sampler=sampler, seed=1, storage=MEMORY, study="r",
                      executor=executor)
    linear = [table[d].config for d in executor.order[1:]
              if table[d].config["variant"] == "linear"]
    fp32 = [i for i, c in enumerate(linear) if c["precision"] == "fp32"]
    assert fp32 and linear[fp32[0] + 1:] == [], linear
    assert result.best is not None and result.best.config["variant"] == "mlp-64"
    measured_mlp = {d for d in executor.order[1:] if table[d].config["variant"] == "mlp-64"}
    assert len(measured_mlp) == len(configs) // 2  # the rest of the space, all of it


@pytest.mark.parametrize("sampler", ["auto", "random"])
def test_a_failed_build_answers_every_runtime_variant_of_its_artifact(digits, sampler,
                                                                     tmp_path):
    """The linear variant's artifacts fail to build; threads and batch change only speed
    (neither is an ONNX Runtime build key), so each artifact is built once and every
    other configuration using it is answered from that failure, pointing at it."""
    import optuna

    from tuner.search.study import INFERRED_ATTR
    from tuner.trial.config import artifact_digest

    space = {"backend": "ort", "batch": [1, 8], "threads": [1, 2],
             "variant": ["linear", "mlp-64"], "precision": ["fp32", "int8-dynamic"],
             "per_channel": False, "int8_keep_fp32": 0, "int8_op_types": "all",
             "ort_graph_optimization": "all"}
    _, table = _space_table(digits, space, linear={
        "state": TrialState.FAILED, "failed_stage": "build", "error": "the build failed",
        "metrics": None})
    executor = TableExecutor(table, profiles={"local": 2})
    storage = f"sqlite:///{tmp_path / 'study.db'}"  # a file, to read the answers back
    result = optimize(digits, ["latency_p90_ms"], ["quality_ratio >= 0.99"], trials=1000,
                      space=space, sampler=sampler, seed=1, storage=storage, study="r",
                      executor=executor, warm_start=False)
    built = [table[d] for d in executor.order[1:] if table[d].config["variant"] == "linear"]
    artifacts = [artifact_digest(Configuration.parse(r.config)) for r in built]
    assert len(artifacts) == len(set(artifacts)) == 2  # fp32 and int8: once each
    assert result.best is not None and result.best.config["variant"] == "mlp-64"
    study = optuna.load_study(study_name="r", storage=storage)
    linear = [t for t in study.trials if t.params.get("variant") == "linear"]
    inferred = [t.user_attrs[INFERRED_ATTR] for t in linear if INFERRED_ATTR in t.user_attrs]
    assert set(inferred) <= {r.trial_id for r in built}
    assert len(linear) == len(built) + len(inferred) + sum("duplicate_of" in t.user_attrs
                                                           for t in linear)
    if sampler == "auto":  # TPE proposes twins of the failures (seeded); random need not
        assert inferred
    assert len(result.results) == len(executor.order) - 1  # answers are no results of their own


def test_a_confirmation_round_that_did_not_count_is_left_out_of_the_median(digits):
    """A round a candidate was unstable (or failed) in is left out of its median; most rounds
    must count for it to be confirmed."""
    from tuner.search.confirm import _ratio, _row

    template = next(iter(_table(digits).values()))

    def run(p90: float, stability: Stability = Stability.STABLE) -> TrialResult:
        return template.model_copy(update={"metrics": template.metrics.model_copy(
            update={"latency_p90_ms": p90, "stability": stability})})

    noisy = run(9.0, Stability.UNSTABLE)
    one_off = _row(template, [run(2.0), noisy, run(4.0)], "latency_p90_ms")
    assert one_off["confirmed"] and one_off["median"] == 3.0
    assert one_off["values"] == [2.0, None, 4.0] and one_off["unusable"] == ["unstable"]
    two_off = _row(template, [run(2.0), noisy, None], "latency_p90_ms")
    assert not two_off["confirmed"] and two_off["median"] is None
    assert two_off["unusable"] == ["unstable", "failed"]
    assert _ratio([6.0, None, 8.0], [2.0, 4.0, 3.0]) == pytest.approx(7.0 / 3.0)

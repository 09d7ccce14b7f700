from __future__ import annotations

import math

import pytest

from tuner.errors import ConstraintError
from tuner.trial.constraints import parse_constraint, unmet, violations
from tuner.trial.results import HardwareRef, Metrics, TrialResult, TrialState, WorkloadRef


def _result(**metrics) -> TrialResult:
    return TrialResult(
        podium_version="0", trial_id="t", state=TrialState.COMPLETE,
        workload=WorkloadRef(name="w", sha256="s", variant="v", variant_sha256="s",
                             metric="accuracy"),
        config={}, config_digest="d", hardware=HardwareRef(profile="local", fingerprint={}),
        packages={}, metrics=Metrics(**metrics))


def test_parse_and_violation_sign():
    c = parse_constraint("quality_ratio >= 0.99")
    assert c.violation(1.0) <= 0 < c.violation(0.9)
    assert parse_constraint("latency_p90_ms<5").violation(5.0) > 0  # strict: on the bound fails
    assert parse_constraint("latency_p90_ms<=5").violation(5.0) == 0
    assert math.isinf(c.violation(None))


@pytest.mark.parametrize("text", ["", "quality_ratio", "quality_ratio == 1", "speed < 3",
                                  "quality_ratio >= fast", "latency_p90_ms < inf"])
def test_bad_expressions(text):
    with pytest.raises(ConstraintError):
        parse_constraint(text)


def test_estimated_power_never_satisfies_a_power_constraint():
    result = _result(power_w=1.0, power_source="estimated_tdp", quality_ratio=1.0)
    reasons = unmet([parse_constraint("power_w <= 40")], result)
    assert len(reasons) == 1 and "estimate" in reasons[0]
    measured = _result(power_w=1.0, power_source="rapl")
    assert unmet([parse_constraint("power_w <= 40")], measured) == []


def test_unstable_measurements_satisfy_nothing():
    result = _result(latency_p90_ms=1.0, stability="unstable")
    assert math.isinf(violations([parse_constraint("latency_p90_ms < 5")], result)[0])


def test_where_time_went_groups_trials_by_outcome_and_reason():
    from datetime import UTC, datetime, timedelta

    from tuner.search.breakdown import where_time_went

    start = datetime(2026, 1, 1, tzinfo=UTC)

    def timed(result: TrialResult, seconds: float, **changes) -> TrialResult:
        return result.model_copy(update={"started_at": start,
                                         "finished_at": start + timedelta(seconds=seconds),
                                         **changes})

    cast = ("converted model is invalid: Type (tensor(float16)) of output arg "
            "(one_hot_{}/Cast_1:0) does not match expected type")
    failed = [timed(_result(), 3, state=TrialState.FAILED, failed_stage="build",
                    error=cast.format(i)) for i in (1, 2)]
    results = [timed(_result(quality_ratio=1.0, latency_p90_ms=2.0), 10),
               timed(_result(quality_ratio=0.5, latency_p90_ms=1.0), 20),
               timed(_result(quality_ratio=0.3, latency_p90_ms=1.0), 40), *failed,
               timed(_result(quality_ratio=1.0, stability="unstable"), 1)]
    groups = where_time_went(results, [parse_constraint("quality_ratio >= 0.99")])
    assert [(g["outcome"], g["trials"], g["seconds"]) for g in groups] == [
        ("infeasible", 2, 60.0), ("feasible", 1, 10.0), ("failed", 2, 6.0), ("unstable", 1, 1.0)]
    assert groups[0]["reason"] == "misses quality_ratio >= 0.99"
    assert groups[2]["reason"].startswith("build: converted model is invalid: Type")

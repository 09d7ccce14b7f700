"""One test per named check, plus the all-reasons-at-once contract of run_checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leaderboard import checker
from leaderboard.checker import CheckContext, run_checks
from leaderboard.models import Tournament
from tests.leaderboard.conftest import REFERENCE_QUALITY, WORKLOAD_SHA, make_record

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def tournament(**overrides: Any) -> Tournament:
    values: dict[str, Any] = {
        "id": 1, "slug": "t", "title": "T", "workload_name": "digits-mlp",
        "workload_sha256": WORKLOAD_SHA, "hardware_profiles": ["local"],
        "objectives": [{"metric": "latency_p90_ms", "direction": "minimize"}],
        "constraints": [], "division": "open", "status": "open", "quota_per_day": 5,
        "quota_total": 10, "reference_quality": REFERENCE_QUALITY, "reference_variant": "fp32"}
    return Tournament(**(values | overrides))


def reasons(check, record=None, **ctx: Any) -> list[str]:
    t = ctx.pop("tournament", None) or tournament()
    return list(check(CheckContext(tournament=t, record=record or make_record(), now=NOW,
                                   **ctx)))


def test_valid_record_passes_every_check() -> None:
    assert run_checks(CheckContext(tournament=tournament(), record=make_record(), now=NOW)) == []


def test_trial_complete() -> None:
    record = make_record(state="failed", error="segfault")
    assert "did not complete" in reasons(checker.check_trial_complete, record)[0]


def test_workload_sha256_and_name() -> None:
    record = make_record(workload={"name": "other", "sha256": "0" * 64, "variant": "fp32",
                                   "variant_sha256": "1" * 64, "metric": "accuracy"})
    found = reasons(checker.check_workload, record)
    assert len(found) == 2 and "sha256" in found[1]


def test_hardware_allowed() -> None:
    found = reasons(checker.check_hardware_allowed, make_record(profile="gpu-x"))
    assert found == ["hardware profile 'gpu-x' is not allowed (allowed: local)"]


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"status": "closed"}, "not open"),
    ({"opens_at": NOW + timedelta(days=1)}, "opens at"),
    ({"closes_at": NOW - timedelta(seconds=1)}, "closed at"),
])
def test_tournament_open(overrides: dict[str, Any], expected: str) -> None:
    found = reasons(checker.check_open, tournament=tournament(**overrides))
    assert len(found) == 1 and expected in found[0]
    assert reasons(checker.check_open, tournament=tournament(**overrides), is_baseline=True) == []


def test_quota() -> None:
    assert reasons(checker.check_quota, submitted_today=4, submitted_total=9) == []
    found = reasons(checker.check_quota, submitted_today=5, submitted_total=10)
    assert len(found) == 2 and "daily" in found[0] and "total" in found[1]


def test_metrics_finite_and_sane() -> None:
    record = make_record(metrics={"quality": 1.5, "throughput_per_s": -3.0})
    record.metrics.latency_mean_ms = float("nan")  # records can come from outside the API
    found = reasons(checker.check_metrics_finite_and_sane, record)
    assert len(found) == 3
    assert any("latency_mean_ms is not finite" in r for r in found)
    assert any(r.startswith("quality = 1.5") for r in found)


def test_objectives_present() -> None:
    record = make_record(metrics={"latency_p90_ms": None})
    found = reasons(checker.check_objectives_present, record)
    assert found == ["latency_p90_ms is missing; the tournament ranks or constrains it"]


def test_percentiles_ordered() -> None:
    found = reasons(checker.check_percentiles_ordered, make_record(p50=2.0, p90=1.0, p99=3.0))
    assert found == ["latency_p50_ms = 2 is above latency_p90_ms = 1"]


def test_quality_ratio_consistent_with_reference() -> None:
    record = make_record(metrics={"quality": 0.9, "quality_ratio": 1.0})
    found = reasons(checker.check_quality_ratio, record)
    assert len(found) == 1 and "inconsistent" in found[0]


def test_open_division_requires_quality() -> None:
    record = make_record(metrics={"quality": None, "quality_ratio": None})
    assert "must be reported" in reasons(checker.check_quality_ratio, record)[0]


def test_stability_not_unstable() -> None:
    record = make_record(metrics={"stability": "unstable", "cv": 0.2})
    assert reasons(checker.check_stability, record) == [
        "the measurement is unstable (CV 20.0%); re-measure on a quiet machine"]
    contended = make_record(metrics={"stability": "unstable", "cv": 0.01},
                            measurement={"contention": 0.31, "contended": True})
    assert reasons(checker.check_stability, contended) == [
        "the measurement is unstable (other processes took 31% of its cores while it was "
        "timed); re-measure on a quiet machine"]
    assert reasons(checker.check_stability, make_record(metrics={"stability": None})) == [
        "stability verdict missing"]


def test_estimated_power_never_satisfies_power_constraint() -> None:
    strict = tournament(constraints=["power_w < 50"])
    found = reasons(checker.check_power_source, make_record(), tournament=strict)
    assert len(found) == 1 and "estimate never satisfies" in found[0]
    measured = make_record(metrics={"power_source": "rapl"})
    assert reasons(checker.check_power_source, measured, tournament=strict) == []


def test_provenance() -> None:
    record = make_record(packages={}, podium_version=" ")
    record.hardware.fingerprint = {}
    found = reasons(checker.check_provenance, record)
    assert found == ["podium_version is empty", "package versions missing",
                     "hardware fingerprint missing"]


def test_closed_division_uses_reference_model() -> None:
    closed = tournament(division="closed")
    assert reasons(checker.check_closed_division, make_record(), tournament=closed) == []
    found = reasons(checker.check_closed_division, make_record(variant="int8-dynamic"),
                    tournament=closed)
    assert len(found) == 1 and "reference model 'fp32'" in found[0]


def test_run_checks_reports_every_failure_at_once() -> None:
    record = make_record(profile="gpu-x", p50=3.0, metrics={"stability": "unstable"})
    found = run_checks(CheckContext(tournament=tournament(status="closed"), record=record,
                                    now=NOW, submitted_today=99, submitted_total=99))
    names = {r.split(":")[0] for r in found}
    assert names == {"hardware_allowed", "tournament_open", "quota", "percentiles_ordered",
                     "stability"}


def test_every_check_is_registered_and_tested() -> None:
    assert set(checker.CHECKS.values()) == {
        getattr(checker, n) for n in dir(checker) if n.startswith("check_")}


def test_estimated_power_claimed_as_measured() -> None:
    claimed = make_record(metrics={"power_source": "rapl"})  # an estimate relabelled
    found = reasons(checker.check_power_claim, claimed)
    assert len(found) == 1 and "no measurement.power evidence" in found[0]
    measured = make_record(metrics={"power_source": "rapl"},
                           measurement={"power": {"source": "rapl", "samples": 120}})
    assert reasons(checker.check_power_claim, measured) == []
    wrong = make_record(metrics={"power_source": "meter"},
                        measurement={"power": {"source": "rapl", "samples": 120}})
    assert len(reasons(checker.check_power_claim, wrong)) == 1
    invented = make_record(metrics={"power_source": "wishful"})
    assert "is unknown" in reasons(checker.check_power_claim, invented)[0]
    assert reasons(checker.check_power_claim, make_record()) == []  # estimated_tdp


def test_tampered_derived_metric() -> None:
    record = make_record()
    record.metrics.throughput_per_s = record.metrics.throughput_per_s * 2  # edited alone
    found = reasons(checker.check_derived_consistent, record)
    assert len(found) == 1 and "edited after measuring" in found[0]
    assert reasons(checker.check_derived_consistent, make_record()) == []


@pytest.mark.parametrize(("price_source", "expected"), [
    ("AWS EC2 on-demand, us-east-1 (2026-02-01)", None),
    ("AWS EC2 on-demand, us-east-1 (2026-02)", None),
    ("AWS EC2 on-demand, us-east-1 (2024-11-01)", "stale"),
    ("AWS EC2 on-demand, us-east-1 (2027-01-01)", "future"),
    ("AWS EC2 on-demand, us-east-1 (2026-13-45)", "not a date"),
    ("profile", "no date"),
])
def test_price_fresh(price_source: str, expected: str | None) -> None:
    by_cost = tournament(objectives=[{"metric": "cost_per_million_usd",
                                      "direction": "minimize"}])
    record = make_record(metrics={"price_source": price_source})
    found = reasons(checker.check_price_fresh, record, tournament=by_cost)
    assert found == [] if expected is None else (len(found) == 1 and expected in found[0])
    # A tournament that neither ranks nor constrains cost does not care about the price.
    assert reasons(checker.check_price_fresh, record) == []

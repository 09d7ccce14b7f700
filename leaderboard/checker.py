"""The submission checker: small named checks, all run, every failure reported at once.

Each check takes a :class:`CheckContext` and yields one reason per problem it finds; an
empty result means it passed. :func:`run_checks` runs every check (it never stops at the
first failure) and returns all reasons, each prefixed with the check's name, so a
submitter sees everything to fix in one round trip.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from leaderboard.core.db import as_utc
from leaderboard.models import Division, Tournament, TournamentStatus
from tuner.trial.constraints import MEASURED_POWER_SOURCES, POWER_METRICS, parse_constraint
from tuner.trial.results import METRICS, Stability, TrialResult, TrialState

# (low, high) inclusive sanity bounds; anything outside is a unit mistake or a broken meter.
BOUNDS: dict[str, tuple[float, float]] = {
    "latency_p50_ms": (1e-6, 3.6e6),
    "latency_p90_ms": (1e-6, 3.6e6),
    "latency_p99_ms": (1e-6, 3.6e6),
    "latency_mean_ms": (1e-6, 3.6e6),
    "throughput_per_s": (1e-6, 1e9),
    "quality": (0.0, 1.0),
    "quality_ratio": (0.0, 2.0),
    "model_size_bytes": (1, 1e12),
    "peak_rss_bytes": (1, 1e13),
    "build_s": (0.0, 7 * 86_400),
    "tune_s": (0.0, 7 * 86_400),
    "power_w": (0.0, 1e5),
    "energy_mj_per_inference": (0.0, 1e9),
    "cost_per_million_usd": (0.0, 1e9),
    "cv": (0.0, 10.0),
}
QUALITY_RATIO_TOLERANCE = 1e-3  # relative
DERIVED_TOLERANCE = 1e-2  # relative: energy = power / throughput, recomputed from the claim
PRICE_MAX_AGE = timedelta(days=365)  # a cost ranked or constrained needs a price this recent
POWER_SOURCES = MEASURED_POWER_SOURCES | {"estimated_tdp", "unavailable"}
# cost.py writes the price's source, then its date: "AWS ... (2026-11-01)".
_PRICE_DATE = re.compile(r"\((\d{4}-\d{2}(?:-\d{2})?)\)\s*$")


@dataclass(frozen=True)
class CheckContext:
    tournament: Tournament
    record: TrialResult
    now: datetime
    submitted_today: int = 0
    submitted_total: int = 0
    is_baseline: bool = False


Check = Callable[[CheckContext], Iterable[str]]


def check_trial_complete(ctx: CheckContext) -> Iterator[str]:
    if ctx.record.state is not TrialState.COMPLETE:
        yield f"the trial did not complete (state {ctx.record.state}): {ctx.record.error}"


def check_workload(ctx: CheckContext) -> Iterator[str]:
    t, w = ctx.tournament, ctx.record.workload
    if w.name != t.workload_name:
        yield f"workload is {w.name!r}, the tournament's is {t.workload_name!r}"
    if w.sha256 != t.workload_sha256:
        yield (f"workload sha256 {w.sha256[:12]}… does not match the tournament's "
               f"{t.workload_sha256[:12]}…")


def check_hardware_allowed(ctx: CheckContext) -> Iterator[str]:
    allowed = ctx.tournament.hardware_profiles
    if ctx.record.hardware.profile not in allowed:
        yield (f"hardware profile {ctx.record.hardware.profile!r} is not allowed "
               f"(allowed: {', '.join(allowed)})")


def check_open(ctx: CheckContext) -> Iterator[str]:
    if ctx.is_baseline:
        return
    t = ctx.tournament
    if t.status != TournamentStatus.OPEN:
        yield f"the tournament is {t.status}, not open"
    if t.opens_at is not None and ctx.now < as_utc(t.opens_at):
        yield f"the tournament opens at {as_utc(t.opens_at).isoformat()}"
    if t.closes_at is not None and ctx.now >= as_utc(t.closes_at):
        yield f"the tournament closed at {as_utc(t.closes_at).isoformat()}"


def check_quota(ctx: CheckContext) -> Iterator[str]:
    if ctx.is_baseline:
        return
    t = ctx.tournament
    if ctx.submitted_today >= t.quota_per_day:
        yield f"daily quota of {t.quota_per_day} submissions used up (resets at 00:00 UTC)"
    if ctx.submitted_total >= t.quota_total:
        yield f"total quota of {t.quota_total} submissions used up"


def check_metrics_finite_and_sane(ctx: CheckContext) -> Iterator[str]:
    metrics = ctx.record.metrics
    for name, (low, high) in BOUNDS.items():
        value = getattr(metrics, name)
        if value is None:
            continue
        if not math.isfinite(value):
            yield f"{name} is not finite ({value})"
        elif not low <= value <= high:
            unit = METRICS[name][0] if name in METRICS else ""
            yield f"{name} = {value:g} {unit} is outside the sane range [{low:g}, {high:g}]"


def check_objectives_present(ctx: CheckContext) -> Iterator[str]:
    wanted = [o["metric"] for o in ctx.tournament.objectives]
    wanted += [parse_constraint(c).metric for c in ctx.tournament.constraints]
    for name in dict.fromkeys(wanted):
        if getattr(ctx.record.metrics, name) is None:
            yield f"{name} is missing; the tournament ranks or constrains it"


def check_percentiles_ordered(ctx: CheckContext) -> Iterator[str]:
    m = ctx.record.metrics
    chain = [("latency_p50_ms", m.latency_p50_ms), ("latency_p90_ms", m.latency_p90_ms),
             ("latency_p99_ms", m.latency_p99_ms)]
    present = [(n, v) for n, v in chain if v is not None and math.isfinite(v)]
    for (low_name, low), (high_name, high) in itertools.pairwise(present):
        if low > high:
            yield f"{low_name} = {low:g} is above {high_name} = {high:g}"


def check_quality_ratio(ctx: CheckContext) -> Iterator[str]:
    m, reference = ctx.record.metrics, ctx.tournament.reference_quality
    if ctx.tournament.division == Division.OPEN and (m.quality is None
                                                     or m.quality_ratio is None):
        yield "open division: quality and quality_ratio must be reported"
    if reference is None or m.quality is None or m.quality_ratio is None:
        return
    if not (math.isfinite(m.quality) and math.isfinite(m.quality_ratio)):
        return
    expected = m.quality / reference
    if abs(m.quality_ratio - expected) > QUALITY_RATIO_TOLERANCE * max(expected, 1e-12):
        yield (f"quality_ratio = {m.quality_ratio:g} is inconsistent with quality "
               f"{m.quality:g} / fp32 reference {reference:g} = {expected:g}")
    claimed = ctx.record.workload.reference_quality
    if claimed is not None and abs(claimed - reference) > 1e-9:
        yield (f"the record's fp32 reference quality {claimed:g} differs from the "
               f"tournament's {reference:g}")


def check_stability(ctx: CheckContext) -> Iterator[str]:
    stability = ctx.record.metrics.stability
    if stability is None:
        yield "stability verdict missing"
    elif stability is Stability.UNSTABLE:
        yield (f"the measurement is unstable ({ctx.record.instability()}); re-measure on a "
               "quiet machine")


def check_power_source(ctx: CheckContext) -> Iterator[str]:
    source = ctx.record.metrics.power_source
    for text in ctx.tournament.constraints:
        constraint = parse_constraint(text)
        if constraint.metric in POWER_METRICS and source not in MEASURED_POWER_SOURCES:
            yield (f"constraint '{constraint}' needs measured power "
                   f"({', '.join(sorted(MEASURED_POWER_SOURCES))}); power_source is "
                   f"{source!r}, an estimate never satisfies it")


def check_power_claim(ctx: CheckContext) -> Iterator[str]:
    """A measured power source must come with the meter's evidence, else it is an estimate
    relabelled as a measurement."""
    m = ctx.record.metrics
    if m.power_source not in POWER_SOURCES:
        yield (f"power_source {m.power_source!r} is unknown "
               f"(known: {', '.join(sorted(POWER_SOURCES))})")
        return
    if m.power_source not in MEASURED_POWER_SOURCES:
        return
    evidence = ctx.record.measurement.get("power")
    samples = evidence.get("samples") if isinstance(evidence, dict) else None
    if not isinstance(evidence, dict) or evidence.get("source") != m.power_source or \
            not isinstance(samples, int) or samples < 1:
        yield (f"power_source {m.power_source!r} claims a measurement, but the record has no "
               "measurement.power evidence (source and samples); an estimate must say "
               "'estimated_tdp'")


def check_derived_consistent(ctx: CheckContext) -> Iterator[str]:
    """Derived figures recomputed from the record: a metric edited alone shows up here."""
    m = ctx.record.metrics
    values = (m.power_w, m.throughput_per_s, m.energy_mj_per_inference)
    if any(v is None or not math.isfinite(v) for v in values) or not m.throughput_per_s:
        return
    expected = m.power_w / m.throughput_per_s * 1000.0  # type: ignore[operator]
    claimed = m.energy_mj_per_inference
    if abs(claimed - expected) > DERIVED_TOLERANCE * max(abs(expected), 1e-12):  # type: ignore[operator]
        yield (f"energy_mj_per_inference = {claimed:g} does not match power_w / "
               f"throughput_per_s = {expected:g}; the record was edited after measuring")


def _uses(ctx: CheckContext, metric: str) -> bool:
    wanted = [o["metric"] for o in ctx.tournament.objectives]
    wanted += [parse_constraint(c).metric for c in ctx.tournament.constraints]
    return metric in wanted


def check_price_fresh(ctx: CheckContext) -> Iterator[str]:
    """A tournament that ranks or constrains cost needs a dated price no older than a year."""
    m = ctx.record.metrics
    if m.cost_per_million_usd is None or not _uses(ctx, "cost_per_million_usd"):
        return
    found = _PRICE_DATE.search(m.price_source)
    if found is None:
        yield (f"price_source {m.price_source!r} carries no date; cost needs a dated price "
               "(the hardware profile's [price] date)")
        return
    text = found.group(1)
    try:
        dated = datetime.strptime(text if len(text) == 10 else f"{text}-01", "%Y-%m-%d")
    except ValueError:
        yield f"price date {text!r} is not a date"
        return
    dated = dated.replace(tzinfo=UTC)
    if dated > ctx.now + timedelta(days=1):
        yield f"price date {text} is in the future"
    elif ctx.now - dated > PRICE_MAX_AGE:
        yield (f"the price is stale (dated {text}, more than {PRICE_MAX_AGE.days} days "
               "ago); update the hardware profile's price and re-measure")


def check_provenance(ctx: CheckContext) -> Iterator[str]:
    r = ctx.record
    if not r.podium_version.strip():
        yield "podium_version is empty"
    if not r.packages:
        yield "package versions missing"
    elif empty := sorted(name for name, version in r.packages.items() if not version.strip()):
        yield f"package versions empty for: {', '.join(empty)}"
    if not r.hardware.fingerprint:
        yield "hardware fingerprint missing"


def check_closed_division(ctx: CheckContext) -> Iterator[str]:
    t = ctx.tournament
    if t.division == Division.CLOSED and ctx.record.workload.variant != t.reference_variant:
        yield (f"closed division: variant {ctx.record.workload.variant!r} is not the "
               f"reference model {t.reference_variant!r}")


CHECKS: dict[str, Check] = {
    "trial_complete": check_trial_complete,
    "workload": check_workload,
    "hardware_allowed": check_hardware_allowed,
    "tournament_open": check_open,
    "quota": check_quota,
    "metrics_sane": check_metrics_finite_and_sane,
    "objectives_present": check_objectives_present,
    "percentiles_ordered": check_percentiles_ordered,
    "quality_ratio": check_quality_ratio,
    "stability": check_stability,
    "power_source": check_power_source,
    "power_claim": check_power_claim,
    "derived_consistent": check_derived_consistent,
    "price_fresh": check_price_fresh,
    "provenance": check_provenance,
    "closed_division": check_closed_division,
}


def run_checks(ctx: CheckContext) -> list[str]:
    """Run every check; return every reason as ``"<check>: <reason>"`` (empty: accepted)."""
    return [f"{name}: {reason}" for name, check in CHECKS.items() for reason in check(ctx)]

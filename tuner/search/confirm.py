"""Confirmed winners: the search's best few and the baseline re-measured side by side.

A search ranks candidates measured minutes apart, each once; on a shared 2-core machine
that order is partly noise (MEASUREMENT.md rule 8: a speed claim is a ratio measured side
by side in one run). So before a search reports, its top ``k`` feasible candidates and the
baseline are measured again in ``rounds`` interleaved rounds — every measurement a trial
of its own through the executor, so in a fresh pinned worker process, its build a cache
hit — alternating the order each round so drift hits every candidate alike. A round times
the p90 minimum (≥ 64 calls and ≥ 1 s) unless the objective is p99: the rounds compare the
objective and p90, and each candidate's search record has its p99. The best is
the one with the best median of the objective over the rounds; the speed-up is the ratio
of the medians. A round in which a candidate's re-measurement failed or was unstable
(after its one re-measurement) is left out of its median and listed in ``unusable``; a
candidate with such rounds in half of them or more is not confirmed and cannot win (on a
shared VM, one noisy round of three used to leave a search with no confirmed best).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from tuner.search.executor import Executor
from tuner.trial.results import METRIC_DIRECTIONS, Stability, TrialResult
from workloads.base import Workload

CONFIRM_TOP_ENV = "PODIUM_CONFIRM_TOP"
CONFIRM_ROUNDS = 3
# Objectives a round must time in full for (LoadGen's 662-call minimum of p99).
P99_NEEDED = frozenset({"latency_p99_ms"})


def default_top() -> int:
    """How many candidates a search confirms: 3, or ``PODIUM_CONFIRM_TOP`` (0: none)."""
    return int(os.environ.get(CONFIRM_TOP_ENV, "3"))


def confirm(executor: Executor, workload: Workload, ranked: list[TrialResult],
            baseline: TrialResult, objective: str, *, rounds: int = CONFIRM_ROUNDS,
            seed: int | None = None,
            progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Re-measure ``ranked`` (best first, as the search ranked them) and ``baseline``.

    Returns the confirmation record: per candidate its values of ``objective`` and of
    ``latency_p90_ms`` by round, the confirmed order, the confirmed best's trial id, and
    its speed-up over the baseline (``speedup``: on the objective, ``speedup_p90``: on
    p90 latency, each baseline median ÷ best median, above 1 the best is faster).
    """
    entries = [baseline, *ranked]
    # The rounds compare the objective and p90: unless the objective is p99, each times the
    # p90 minimum (≥ 64 calls and ≥ 1 s), not the 662 calls p99 needs — the search's own
    # record of each candidate has its p99.
    gates = {} if objective in P99_NEEDED else {"time_p99": False}
    runs: list[list[TrialResult | None]] = [[] for _ in entries]
    # A round's time: first what the search's own measurements of these entries took, then
    # what the rounds so far took (the estimate a progress display shows).
    per_round = sum(r.timings.get("measure_wall_s", 0.0) for r in entries)
    started = time.monotonic()
    for round_index in range(rounds):
        order = list(range(len(entries)))
        if round_index % 2:
            order.reverse()
        if round_index:
            per_round = (time.monotonic() - started) / round_index
        if progress is not None:
            left = per_round * (rounds - round_index)
            progress(f"confirming the best {len(ranked)} and the baseline: round "
                     f"{round_index + 1} of {rounds}"
                     + (f" (~{round(left)} s left)" if left > 0 else ""))
        for index in order:
            runs[index].append(_remeasure(executor, workload, entries[index], seed,
                                          key=("confirm", round_index, index), gates=gates))
    sign = 1.0 if METRIC_DIRECTIONS[objective] == "minimize" else -1.0
    rows = [_row(result, measured, objective) for result, measured in zip(entries, runs,
                                                                          strict=True)]
    base, candidates = rows[0], rows[1:]
    confirmed = sorted((r for r in candidates if r["confirmed"]),
                       key=lambda r: sign * r["median"])
    record: dict[str, Any] = {
        "rounds": rounds, "metric": objective, "baseline": base, "candidates": candidates,
        "search_order": [r["trial_id"] for r in candidates],
        "confirmed_order": [r["trial_id"] for r in confirmed],
        "best_trial_id": confirmed[0]["trial_id"] if confirmed else None}
    record["order_changed"] = (record["confirmed_order"]
                               != record["search_order"][:len(confirmed)])
    if confirmed:
        best = confirmed[0]
        record["latency_p90_ms"] = best["latency_p90_ms"]
        record["baseline_latency_p90_ms"] = base["latency_p90_ms"]
        record["speedup_p90"] = record["speedup"] = None  # an unconfirmed baseline: no ratio
        if base["confirmed"]:
            record["speedup_p90"] = _ratio(base["latency_p90_ms"], best["latency_p90_ms"])
            record["speedup"] = (_ratio(base["values"], best["values"]) if sign > 0
                                 else _ratio(best["values"], base["values"]))
    return record


def _remeasure(executor: Executor, workload: Workload, result: TrialResult,
               seed: int | None, *, key: Any,
               gates: dict[str, Any] | None = None) -> TrialResult | None:
    from tuner.trial.config import Configuration

    # The artifact's quality is known: each round re-measures speed only.
    executor.submit(key, workload, Configuration.parse(result.config), seed=seed,
                    gates={"reuse_quality": True} | (gates or {}))
    while True:
        for running, outcome in executor.wait(1.0):
            if running.key == key:
                return outcome if isinstance(outcome, TrialResult) else None


def _row(original: TrialResult, measured: list[TrialResult | None],
         objective: str) -> dict[str, Any]:
    """One entry's rounds: a value per round, None where that round failed or was
    unstable (``unusable`` says why); confirmed when most rounds count, its median over
    those."""
    values: list[float | None] = []
    p90: list[float | None] = []
    unusable = []
    for result in measured:
        usable = (result is not None and result.ok
                  and result.metrics.stability is not Stability.UNSTABLE)
        values.append(result.metric(objective) if usable else None)
        p90.append(result.metric("latency_p90_ms") if usable else None)
        if not usable:
            unusable.append("failed" if result is None or not result.ok else "unstable")
    counted = [v for v in values if v is not None]
    confirmed = len(counted) > len(values) / 2
    return {"trial_id": original.trial_id, "config_digest": original.config_digest,
            "values": values, "latency_p90_ms": p90,
            "median": statistics.median(counted) if confirmed else None,
            "confirmed": confirmed, "unusable": unusable,
            "remeasured_trial_ids": [r.trial_id for r in measured if r is not None]}


def _ratio(numerators: list[Any], denominators: list[Any]) -> float | None:
    """median(numerators) ÷ median(denominators), each over its usable rounds."""
    top = [v for v in numerators if v is not None]
    bottom = [v for v in denominators if v is not None]
    if not top or not bottom or statistics.median(bottom) <= 0:
        return None
    return statistics.median(top) / statistics.median(bottom)

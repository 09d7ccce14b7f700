"""Where a search's time went: its trials grouped by outcome and reason, with time spent.

A user who waited ten minutes for a search wants to see at a glance that, say, six trials
failed the same fp16 conversion and three untuned TVM builds took two thirds of the time.
So every trial falls in one group: ``feasible``, ``unstable`` (measured, judged unusable),
``infeasible`` (by the constraints it missed, not their measured values; ``not timed``
where the quality gate stopped it), ``pruned`` (the timing probe was far behind, or the
measurement would not fit its time budget), or ``failed``
(by its stage and its error with numbers, paths and quoted names masked, so the same
failure on two models or shapes is one group). Time is the trial's wall time, start to
finish, build and measurement included.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from tuner.trial.constraints import Constraint
from tuner.trial.results import Stability, TrialResult, TrialState

REASON_CHARS = 120
_MASKS = ((re.compile(r"'[^']*'|\"[^\"]*\"|\([^()]*\)"), "…"),  # quoted names, parentheses
          (re.compile(r"(/[\w.+-]+)+"), "…"),  # paths
          (re.compile(r"\b0x[0-9a-f]+\b|\b\d+(\.\d+)?(e-?\d+)?\b", re.IGNORECASE), "N"))


def outcome(result: TrialResult, constraints: Iterable[Constraint]) -> tuple[str, str]:
    """``result``'s group: (outcome, reason)."""
    if result.state is TrialState.PRUNED:
        if "capped" in result.measurement:
            return "pruned", "too slow for the measurement budget: not measured"
        return "pruned", "probe far behind the incumbent (or the front): timing stopped"
    if result.state is TrialState.INFEASIBLE:
        missed = [str(c) for c in constraints if result.metric(c.metric) is not None
                  and not c.holds(result.metric(c.metric))]
        return "infeasible", f"misses {' and '.join(missed) or 'the quality floor'} (not timed)"
    if not result.ok:
        stage = f"{result.failed_stage}: " if result.failed_stage else ""
        return "failed", stage + _masked(result.error or "no reason recorded")
    if result.metrics.stability is Stability.UNSTABLE:
        return "unstable", "timing varied too much to rank (MEASUREMENT.md)"
    missed = [str(c) for c in constraints if not c.evaluate(result)[0]]
    if missed:
        return "infeasible", "misses " + " and ".join(missed)
    return "feasible", ""


def seconds(result: TrialResult) -> float:
    """The trial's wall time (its recorded timings where it has no finish time)."""
    if result.finished_at is not None:
        return max(0.0, (result.finished_at - result.started_at).total_seconds())
    return float(sum(result.timings.values()))


def where_time_went(results: Iterable[TrialResult],
                    constraints: Iterable[Constraint]) -> list[dict[str, Any]]:
    """Groups ``{"outcome", "reason", "trials", "seconds"}``, the costliest first."""
    constraints = list(constraints)
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for result in results:
        key = outcome(result, constraints)
        group = groups.setdefault(key, {"outcome": key[0], "reason": key[1], "trials": 0,
                                        "seconds": 0.0})
        group["trials"] += 1
        group["seconds"] += seconds(result)
    for group in groups.values():
        group["seconds"] = round(group["seconds"], 1)
    return sorted(groups.values(), key=lambda g: (-g["seconds"], g["outcome"], g["reason"]))


def _masked(error: str) -> str:
    text = error.splitlines()[0] if error else ""
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    return text[:REASON_CHARS]

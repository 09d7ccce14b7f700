"""Constraint expressions on metric names: ``"quality_ratio >= 0.99"``.

The same small language is used by ``optimize`` (turned into Optuna's ``constraints_func``
values, where c <= 0 means feasible), by the warm start judging relatives' results and by
leaderboard tournaments, so it lives with the records it judges (:mod:`tuner.trial.results`),
below every stage. Parsing is strict: an unknown metric, operator or a non-finite bound is a
:class:`ConstraintError`.

MEASUREMENT.md rule 6: a constraint on ``power_w`` or ``energy_mj_per_inference`` is
satisfied only by a *measured* power source; an estimate never proves it.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tuner.errors import ConstraintError
from tuner.trial.results import METRICS, Stability, TrialResult

MEASURED_POWER_SOURCES = frozenset({"meter", "rapl", "nvml"})
QUALITY_METRICS = frozenset({"quality", "quality_ratio"})  # decided by the numbers computed
POWER_METRICS = frozenset({"power_w", "energy_mj_per_inference"})

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt,
}
_PATTERN = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*(\S+)\s*$")


@dataclass(frozen=True)
class Constraint:
    """``metric op bound``; :meth:`violation` is <= 0 exactly when satisfied."""

    metric: str
    op: str
    bound: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"

    def holds(self, value: float | None) -> bool:
        return value is not None and math.isfinite(value) and _OPERATORS[self.op](value, self.bound)

    def violation(self, value: float | None) -> float:
        """Optuna-style constraint value: <= 0 feasible, larger = further from feasible.

        Strict operators count a value on the bound as violated by a tiny margin. A missing
        or non-finite value is maximally infeasible.
        """
        if value is None or not math.isfinite(value):
            return math.inf
        scale = max(abs(self.bound), 1e-12)
        gap = (value - self.bound) if self.op in ("<=", "<") else (self.bound - value)
        gap /= scale
        if self.op in ("<", ">") and gap == 0:
            return 1e-9
        return gap

    def evaluate(self, result: TrialResult) -> tuple[bool, float, str | None]:
        """Check ``result``: (satisfied, violation, reason if not satisfied)."""
        value = result.metric(self.metric)
        source = result.metrics.power_source
        if self.metric in POWER_METRICS and source not in MEASURED_POWER_SOURCES:
            return False, math.inf, (f"{self}: power is {source!r}, "
                                     "an estimate cannot satisfy a power constraint")
        if result.metrics.stability is Stability.UNSTABLE:
            return False, math.inf, f"{self}: the measurement is unstable"
        violation = self.violation(value)
        if violation <= 0:
            return True, violation, None
        shown = "missing" if value is None else f"{value:g}"
        return False, violation, f"{self}: measured {shown}"


def parse_constraint(text: str) -> Constraint:
    """Parse one expression like ``"latency_p90_ms < 5"``.

    Raises:
        ConstraintError: malformed expression, unknown metric, or non-finite bound.
    """
    match = _PATTERN.match(text or "")
    if not match:
        raise ConstraintError(f"cannot parse constraint {text!r}: expected 'METRIC OP NUMBER' "
                              "with OP one of <=, >=, <, >")
    metric, op, raw = match.groups()
    if metric not in METRICS:
        raise ConstraintError(f"unknown metric {metric!r} in constraint {text!r} "
                              f"(metrics: {', '.join(METRICS)})")
    try:
        bound = float(raw)
    except ValueError:
        raise ConstraintError(f"bound {raw!r} in constraint {text!r} is not a number") from None
    if not math.isfinite(bound):
        raise ConstraintError(f"bound in constraint {text!r} must be finite")
    return Constraint(metric, op, bound)


def parse_constraints(texts: Iterable[str]) -> list[Constraint]:
    return [parse_constraint(t) for t in texts]


def violations(constraints: Iterable[Constraint], result: TrialResult) -> list[float]:
    """Optuna ``constraints_func`` values for one result (failed trials: all infinite)."""
    if not result.ok:
        return [math.inf for _ in constraints]
    return [c.evaluate(result)[1] for c in constraints]


def quality_shortfall(constraints: Iterable[Constraint], result: TrialResult) -> float:
    """How far ``result`` misses its quality constraints, relative to each bound (the worst
    one; <= 0 when all hold or there are none; 0 for a failed trial, which says nothing
    about the numbers). Stability plays no part: it is about timing, not numbers."""
    gaps = [c.violation(result.metric(c.metric)) for c in constraints
            if c.metric in QUALITY_METRICS]
    return max(gaps) if gaps and result.quality_known else 0.0


def unmet(constraints: Iterable[Constraint], result: TrialResult) -> list[str]:
    """Every reason ``result`` fails ``constraints`` (empty when all hold)."""
    return [reason for c in constraints if (reason := c.evaluate(result)[2])]


def feasible(results: list[TrialResult], constraints: list[Constraint]) -> list[TrialResult]:
    """Complete, not unstable, every constraint met."""
    return [r for r in results if r.ok and r.metrics.stability is not Stability.UNSTABLE
            and not unmet(constraints, r)]

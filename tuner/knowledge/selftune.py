"""Self-tuning of the search: ``sampler="auto"`` picks the sampler that did best before.

Every cold search (no warm start used) leaves one line in the knowledge store's
``searches`` table: its sampler, how many trials it measured, and after how many it first
held a feasible result within 5% of its own best (:func:`trials_to_best`). For a new search,
:func:`choose_sampler` looks at past searches of similar workloads on similar hardware
(similarity ≥ ``MIN_SIMILARITY``), scores each past search by the trials it needed to come
within 5% of the best value *any* search found for that pair (a search that never got there
scores its budget + 1), and picks the sampler with the lowest similarity-weighted mean,
provided at least two samplers each have ``MIN_SEARCHES`` such searches. Otherwise — and
on ties — it keeps TPE, the default measured in bench/search_efficiency.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from tuner.knowledge.fingerprint import WorkloadFingerprint, hardware_similarity, similarity
from tuner.trial.constraints import Constraint, feasible
from tuner.trial.results import METRIC_DIRECTIONS, TrialResult

DEFAULT = "tpe"
CANDIDATES = ("tpe", "nsga2", "random")
MIN_SIMILARITY = 0.5
MIN_SEARCHES = 2
WITHIN = 1.05


def trials_to_best(measured: Sequence[TrialResult], objective: str,
                   constraints: Sequence[Constraint]) -> tuple[int, float | None]:
    """(trials until first within 5% of the best feasible value, that best value)."""
    sign = 1.0 if METRIC_DIRECTIONS[objective] == "minimize" else -1.0
    values = [sign * r.metric(objective) if feasible([r], list(constraints))
              and r.metric(objective) is not None else None for r in measured]
    known = [v for v in values if v is not None]
    if not known:
        return len(measured) + 1, None
    best = min(known)
    first = next(index for index, value in enumerate(values, 1)
                 if value is not None and _within(value, best))
    return first, sign * best


def _within(value: float, best: float) -> bool:
    """``value`` (sign-adjusted, lower is better) is within 5% of ``best``."""
    return value <= best + abs(best) * (WITHIN - 1)


def choose_sampler(history: list[dict[str, Any]], workload_fp: WorkloadFingerprint,
                   hardware_fp: dict[str, Any], objective: str) -> tuple[str, str]:
    """The sampler for ``auto`` and a one-line reason, from the store's past searches."""
    sign = 1.0 if METRIC_DIRECTIONS[objective] == "minimize" else -1.0
    similar = []
    for row in history:
        if row["objective"] != objective or row["best"] is None:
            continue
        weight = (similarity(workload_fp, WorkloadFingerprint.from_dict(row["workload_fp"]))
                  * hardware_similarity(hardware_fp, row["hardware_fp"]))
        if weight >= MIN_SIMILARITY:
            similar.append((row, weight))
    best_of_pair: dict[tuple[str, str], float] = {}
    for row, _ in similar:
        pair = (row["workload_hash"], row["hardware_hash"])
        best_of_pair[pair] = min(best_of_pair.get(pair, float("inf")), sign * row["best"])
    costs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for row, weight in similar:
        reached = _within(sign * row["best"], best_of_pair[(row["workload_hash"],
                                                            row["hardware_hash"])])
        cost = row["trials_to_best"] if reached else row["measured"] + 1
        costs[row["sampler"]].append((cost, weight))
    means = {name: sum(c * w for c, w in pairs) / sum(w for _, w in pairs)
             for name, pairs in costs.items()
             if name in CANDIDATES and len(pairs) >= MIN_SEARCHES}
    if len(means) < 2:
        return DEFAULT, (f"auto → {DEFAULT}: fewer than {MIN_SEARCHES} similar past searches "
                         f"for two samplers")
    chosen = min(sorted(means), key=lambda name: (means[name], name != DEFAULT))
    shown = ", ".join(f"{name} {means[name]:.1f}" for name in sorted(means, key=means.get))
    return chosen, (f"auto → {chosen}: trials to within 5% of the best on "
                    f"{len(similar)} similar past searches (weighted mean): {shown}")

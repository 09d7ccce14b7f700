"""Ranking: constraint filter first, then the sort metric, ties by submission time; Pareto.

Pure functions over plain row dicts (see :func:`leaderboard.crud.leaderboard_rows`), so the
ranking is testable without a database. Constraint feasibility is decided once, when a
submission is stored (``Submission.feasible`` / ``unmet``), with :mod:`tuner.trial.constraints`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

SORT_BY_TIME = "created_at"


def _key(value: Any, direction: str) -> float:
    """Ascending sort key for "better first"; a missing value sorts last."""
    if value is None or not isinstance(value, int | float) or not math.isfinite(value):
        return math.inf
    return float(value) if direction == "minimize" else -float(value)


def pareto_ranks(points: Sequence[Sequence[float]]) -> list[int]:
    """Non-dominated sorting of minimisation vectors: 1 = the Pareto front.

    Efficient Non-dominated Sort with binary search over fronts (Zhang et al., 2015):
    after a lexicographic sort a point can only be dominated by earlier ones, and if a
    front dominates it so does every earlier front. Equal points share a front.
    """
    n = len(points)
    if n == 0:
        return []
    arr = np.asarray(points, dtype=float).reshape(n, -1)
    order = np.lexsort(arr.T[::-1])
    ranks = [0] * n
    if arr.shape[1] <= 2:
        return _pareto_ranks_2d(arr if arr.shape[1] == 2 else np.hstack([arr, arr]), order)
    fronts: list[np.ndarray] = []
    sizes: list[int] = []
    for index in order:
        p = arr[index]
        lo, hi = 0, len(fronts)
        while lo < hi:
            mid = (lo + hi) // 2
            f = fronts[mid][: sizes[mid]]
            if np.any(np.all(f <= p, axis=1) & np.any(f < p, axis=1)):
                lo = mid + 1
            else:
                hi = mid
        if lo == len(fronts):
            fronts.append(np.empty((16, arr.shape[1])))
            sizes.append(0)
        if sizes[lo] == len(fronts[lo]):
            fronts[lo] = np.vstack([fronts[lo], np.empty_like(fronts[lo])])
        fronts[lo][sizes[lo]] = p
        sizes[lo] += 1
        ranks[index] = lo + 1
    return ranks


def _pareto_ranks_2d(arr: np.ndarray, order: np.ndarray) -> list[int]:
    # In lexicographic order the last point added to a front has its smallest second
    # coordinate, so it alone decides whether the front dominates a new point.
    ranks = [0] * len(arr)
    last: list[tuple[float, float]] = []
    for index in order.tolist():
        p = (float(arr[index, 0]), float(arr[index, 1]))
        lo, hi = 0, len(last)
        while lo < hi:
            mid = (lo + hi) // 2
            q = last[mid]
            if q[1] < p[1] or (q[1] == p[1] and q != p):
                lo = mid + 1
            else:
                hi = mid
        if lo == len(last):
            last.append(p)
        else:
            last[lo] = p
        ranks[index] = lo + 1
    return ranks


def rank_rows(rows: list[dict[str, Any]], *, objectives: list[dict[str, str]], sort: str,
              order: str, directions: dict[str, str]) -> list[dict[str, Any]]:
    """Order and annotate leaderboard rows.

    Feasible rows (constraints met) are sorted by ``sort`` (better first for ``order`` that
    matches the metric's direction), ties by ``created_at``; each gets ``rank`` (the baseline
    is placed but not ranked) and ``pareto_rank`` over all ``objectives``. Infeasible rows are
    dropped, except the baseline, which is always shown (last, unranked, when infeasible).
    """
    feasible = [r for r in rows if r["feasible"]]
    shown_infeasible = [r for r in rows if not r["feasible"] and r["is_baseline"]]

    if sort == SORT_BY_TIME:
        feasible.sort(key=lambda r: r["created_at"], reverse=order == "desc")
    else:
        # "asc"/"desc" are literal value orders; missing values always go last.
        direction = "minimize" if order == "asc" else "maximize"
        feasible.sort(key=lambda r: (_key(r["metrics"].get(sort), direction), r["created_at"]))

    vectors, owners = [], []
    for row in feasible:
        keys = [_key(row["metrics"].get(o["metric"]), o["direction"]) for o in objectives]
        if all(math.isfinite(k) for k in keys):
            vectors.append(keys)
            owners.append(row)
    pareto = {id(row): rank for row, rank in zip(owners, pareto_ranks(vectors), strict=True)}

    ranked, position = [], 0
    for row in feasible:
        if not row["is_baseline"]:
            position += 1
        ranked.append(row | {"rank": None if row["is_baseline"] else position,
                             "pareto_rank": pareto.get(id(row))})
    ranked += [row | {"rank": None, "pareto_rank": None} for row in shown_infeasible]
    return ranked

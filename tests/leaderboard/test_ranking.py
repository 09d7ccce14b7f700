from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leaderboard.ranking import pareto_ranks, rank_rows
from tuner.trial.results import METRIC_DIRECTIONS

OBJECTIVES = [{"metric": "latency_p90_ms", "direction": "minimize"},
              {"metric": "quality_ratio", "direction": "maximize"}]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def brute_force(points: list[tuple[float, ...]]) -> list[int]:
    remaining, ranks, front = set(range(len(points))), [0] * len(points), 1
    while remaining:
        layer = [i for i in remaining if not any(
            all(a <= b for a, b in zip(points[j], points[i], strict=True))
            and points[j] != points[i] for j in remaining)]
        for i in layer:
            ranks[i] = front
        remaining -= set(layer)
        front += 1
    return ranks


@pytest.mark.parametrize("dims", [1, 2, 3, 4])
def test_pareto_ranks_match_brute_force(dims: int) -> None:
    rng = random.Random(dims)
    for _ in range(100):
        points = [tuple(float(rng.randint(0, 4)) for _ in range(dims))
                  for _ in range(rng.randint(0, 25))]
        assert pareto_ranks(points) == brute_force(points)


def row(p90: float, ratio: float, *, minutes: int = 0, baseline: bool = False,
        feasible: bool = True) -> dict[str, Any]:
    return {"submission_id": f"{p90}-{ratio}-{minutes}", "is_baseline": baseline,
            "feasible": feasible, "created_at": T0 + timedelta(minutes=minutes),
            "metrics": {"latency_p90_ms": p90, "quality_ratio": ratio}}


def rank(rows: list[dict[str, Any]], sort: str = "latency_p90_ms",
         order: str = "asc") -> list[dict[str, Any]]:
    return rank_rows(rows, objectives=OBJECTIVES, sort=sort, order=order,
                     directions=METRIC_DIRECTIONS)


def test_sort_primary_objective_ties_by_time_and_pareto() -> None:
    rows = [row(2.0, 0.99, minutes=2), row(1.0, 0.97, minutes=5), row(2.0, 0.99, minutes=1),
            row(3.0, 0.98, minutes=0)]
    ranked = rank(rows)
    assert [(r["metrics"]["latency_p90_ms"], r["created_at"].minute) for r in ranked] == [
        (1.0, 5), (2.0, 1), (2.0, 2), (3.0, 0)]
    assert [r["rank"] for r in ranked] == [1, 2, 3, 4]
    assert [r["pareto_rank"] for r in ranked] == [1, 1, 1, 2]


def test_constraint_filter_first_baseline_always_shown_unranked() -> None:
    rows = [row(1.0, 0.9, feasible=False), row(2.0, 0.99), row(5.0, 1.0, baseline=True),
            row(0.5, 0.8, baseline=True, feasible=False, minutes=9)]
    ranked = rank(rows)
    assert [r["metrics"]["latency_p90_ms"] for r in ranked] == [2.0, 5.0, 0.5]
    assert [r["rank"] for r in ranked] == [1, None, None]
    assert ranked[-1]["pareto_rank"] is None


def test_order_desc_and_missing_values_last() -> None:
    rows = [row(1.0, 0.99), row(2.0, 0.98), {**row(3.0, 0.9), "metrics": {}}]
    ranked = rank(rows, sort="quality_ratio", order="desc")
    assert [r["metrics"].get("quality_ratio") for r in ranked] == [0.99, 0.98, None]
    assert ranked[-1]["pareto_rank"] is None
    ranked = rank(rows, sort="quality_ratio", order="asc")
    assert [r["metrics"].get("quality_ratio") for r in ranked] == [0.98, 0.99, None]

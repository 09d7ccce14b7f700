"""Ranked leaderboards, built from the database and cached per tournament.

Both the API and the website read leaderboards through :func:`ranked`; every write to a
tournament's submissions calls ``cache.invalidate(slug)`` after its commit.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import Engine
from sqlmodel import Session

from leaderboard import crud
from leaderboard.cache import LeaderboardCache
from leaderboard.core.errors import ApiError
from leaderboard.models import Tournament
from leaderboard.ranking import SORT_BY_TIME, rank_rows
from tuner.trial.results import METRICS


def default_sort(tournament: Tournament) -> tuple[str, Literal["asc", "desc"]]:
    primary = tournament.objectives[0]
    return primary["metric"], "asc" if primary["direction"] == "minimize" else "desc"


def resolve_sort(tournament: Tournament, sort: str | None,
                 order: str | None) -> tuple[str, Literal["asc", "desc"]]:
    metric, default_order = default_sort(tournament)
    if sort is not None and sort != metric:
        if sort != SORT_BY_TIME and sort not in METRICS:
            raise ApiError(422, f"cannot sort by {sort!r} (choose {SORT_BY_TIME} or a metric: "
                                f"{', '.join(METRICS)})")
        metric = sort
        default_order = ("asc" if sort == SORT_BY_TIME or METRICS[sort][1] == "minimize"
                         else "desc")
    if order is None:
        return metric, default_order
    if order not in ("asc", "desc"):
        raise ApiError(422, f"order must be asc or desc, not {order!r}")
    return metric, order  # type: ignore[return-value]


def ranked(*, engine: Engine, cache: LeaderboardCache, slug: str, sort: str | None,
           order: str | None, hardware: str | None,
           verified_only: bool) -> tuple[Tournament, str, str, list[dict[str, Any]]]:
    """(tournament, sort, order, every ranked row) for one view of a leaderboard."""
    generation = cache.generation(slug)
    with Session(engine, expire_on_commit=False) as session:
        tournament = crud.get_tournament(session=session, slug=slug)
        sort, order = resolve_sort(tournament, sort, order)
        key = ("rows", sort, order, hardware or "", verified_only)
        hit = cache.get(slug, key)
        if hit is not None:
            return tournament, sort, order, hit
        rows = crud.leaderboard_rows(session=session, tournament=tournament,
                                     hardware=hardware, verified_only=verified_only)
    result = rank_rows(rows, objectives=tournament.objectives, sort=sort, order=order,
                       directions={m: d for m, (_, d) in METRICS.items()})
    cache.put(slug, key, result, generation=generation)
    return tournament, sort, order, result

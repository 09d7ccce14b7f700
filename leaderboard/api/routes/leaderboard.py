from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response

from leaderboard import board
from leaderboard.api.deps import OFFSET_MAX
from leaderboard.models import LeaderboardPublic, Objective
from tuner.trial.results import METRIC_UNITS

router = APIRouter(prefix="/tournaments", tags=["leaderboard"])


def _render(request: Request, slug: str, sort: str | None, order: str | None,
            hardware: str | None, verified_only: bool, limit: int, offset: int) -> bytes:
    state = request.app.state
    tournament, sort, order, rows = board.ranked(
        engine=state.engine, cache=state.cache, slug=slug, sort=sort, order=order,
        hardware=hardware, verified_only=verified_only)
    page = LeaderboardPublic(
        tournament=slug, sort=sort, order=order,  # type: ignore[arg-type]
        objectives=[Objective(**o) for o in tournament.objectives],
        constraints=tournament.constraints, units=METRIC_UNITS,
        data=rows[offset:offset + limit], count=len(rows))
    return json.dumps(jsonable_encoder(page), separators=(",", ":")).encode()


@router.get("/{slug}/leaderboard", response_model=LeaderboardPublic)
async def leaderboard(request: Request, slug: str, sort: str | None = None,
                      order: Literal["asc", "desc"] | None = None,
                      hardware: str | None = Query(None, max_length=200),
                      verified_only: bool = False, limit: int = Query(50, ge=1, le=500),
                      offset: int = Query(0, ge=0, le=OFFSET_MAX)) -> Response:
    """Ranked rows: constraint filter, then ``sort`` (default: the primary objective), ties
    by submission time; each row has its Pareto rank over all objectives. The baseline row
    is included with ``is_baseline`` and no rank."""
    cache = request.app.state.cache
    key = ("page", sort, order, hardware or "", verified_only, limit, offset)
    generation = cache.generation(slug)
    body = cache.get(slug, key)
    if body is None:
        body = await run_in_threadpool(_render, request, slug, sort, order, hardware,
                                       verified_only, limit, offset)
        cache.put(slug, key, body, generation=generation)
    return Response(body, media_type="application/json")

"""The ``/api/v1`` router: includes one router per file, nothing else."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from leaderboard.api.deps import limit_writes
from leaderboard.api.routes import (
    health,
    leaderboard,
    participants,
    referee,
    registration,
    submissions,
    tournaments,
)
from leaderboard.models import ErrorPublic

_ERRORS = {400: "malformed request", 401: "missing, invalid, expired or revoked API key",
           403: "not allowed (admin only, or another participant's submission)",
           404: "no such tournament, participant or submission", 409: "conflict",
           413: "request body too large", 422: "invalid request, or submission rejected",
           429: "rate limit exceeded (see Retry-After)",
           503: "database busy, read-only or unavailable (see Retry-After)",
           507: "database full"}
# Every route documents every error it may answer, all in one shape: {"error": {...}}.
# Every write counts against its client address's limit before anything else runs.
api_router = APIRouter(responses={status: {"model": ErrorPublic, "description": text}
                                  for status, text in _ERRORS.items()},
                       dependencies=[Depends(limit_writes)])
api_router.include_router(health.router)
api_router.include_router(tournaments.router)
api_router.include_router(leaderboard.router)
api_router.include_router(participants.router)
api_router.include_router(registration.router)
api_router.include_router(submissions.router)
api_router.include_router(referee.router)

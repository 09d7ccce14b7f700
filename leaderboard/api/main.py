"""The ``/api/v1`` router: includes one router per file, nothing else."""

from __future__ import annotations

from fastapi import APIRouter

from leaderboard.api.routes import (
    health,
    leaderboard,
    participants,
    referee,
    submissions,
    tournaments,
)

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(tournaments.router)
api_router.include_router(leaderboard.router)
api_router.include_router(participants.router)
api_router.include_router(submissions.router)
api_router.include_router(referee.router)

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from leaderboard.api.deps import SessionDep

router = APIRouter(prefix="/health", tags=["health"])


@router.get("")
def health(session: SessionDep) -> dict[str, str]:
    """Liveness and database reachability."""
    session.exec(text("SELECT 1"))  # type: ignore[call-overload]
    return {"status": "ok", "database": "ok"}

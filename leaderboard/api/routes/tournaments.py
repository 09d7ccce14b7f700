from __future__ import annotations

from fastapi import APIRouter, Query, status

from leaderboard import crud
from leaderboard.api.deps import OFFSET_MAX, AdminDep, SessionDep, WriteSessionDep
from leaderboard.core.db import utcnow
from leaderboard.models import TournamentCreate, TournamentPublic, TournamentsPublic
from leaderboard.present import tournament_public

router = APIRouter(prefix="/tournaments", tags=["tournaments"])


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[AdminDep])
def create_tournament(session: WriteSessionDep,
                      tournament_in: TournamentCreate) -> TournamentPublic:
    """Create a tournament (admin token)."""
    tournament = crud.create_tournament(session=session, tournament_in=tournament_in)
    return tournament_public(tournament, is_open=crud.is_open(tournament, utcnow()))


@router.get("")
def list_tournaments(session: SessionDep, limit: int = Query(100, ge=1, le=500),
                     offset: int = Query(0, ge=0, le=OFFSET_MAX)) -> TournamentsPublic:
    rows, count = crud.list_tournaments(session=session, limit=limit, offset=offset)
    now = utcnow()
    return TournamentsPublic(data=[tournament_public(t, is_open=crud.is_open(t, now))
                                   for t in rows], count=count)


@router.get("/{slug}")
def show_tournament(session: SessionDep, slug: str) -> TournamentPublic:
    tournament = crud.get_tournament(session=session, slug=slug)
    return tournament_public(tournament, is_open=crud.is_open(tournament, utcnow()))

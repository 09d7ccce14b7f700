from __future__ import annotations

from fastapi import APIRouter, Query, Request, status

from leaderboard import crud
from leaderboard.api.deps import CurrentParticipant, SessionDep, WriteSessionDep
from leaderboard.models import (
    ParticipantCreate,
    ParticipantPublic,
    ParticipantRegistered,
    SubmissionsPublic,
)
from leaderboard.present import submission_public

router = APIRouter(prefix="/participants", tags=["participants"])


@router.post("", status_code=status.HTTP_201_CREATED)
def register(session: WriteSessionDep, participant_in: ParticipantCreate) -> ParticipantRegistered:
    """Register; the response holds the API key, which is never shown again."""
    participant, key = crud.create_participant(session=session, participant_in=participant_in)
    return ParticipantRegistered(**participant.model_dump(), api_key=key)


@router.get("/me")
def me(participant: CurrentParticipant) -> ParticipantPublic:
    return ParticipantPublic(**participant.model_dump())


@router.get("/me/submissions")
def my_submissions(request: Request, session: SessionDep, participant: CurrentParticipant,
                   limit: int = Query(100, ge=1, le=500),
                   offset: int = Query(0, ge=0)) -> SubmissionsPublic:
    """Your submissions, rejected ones and their reasons included."""
    rows, count = crud.list_own_submissions(session=session, participant=participant,
                                            limit=limit, offset=offset)
    base = str(request.base_url)
    return SubmissionsPublic(data=[submission_public(session=session, submission=s,
                                                     base_url=base) for s in rows],
                             count=count)

from __future__ import annotations

from fastapi import APIRouter, Query, Request, status

from leaderboard import crud
from leaderboard.api.deps import (
    OFFSET_MAX,
    AdminDep,
    CurrentParticipant,
    ParticipantId,
    RegistrationGate,
    SessionDep,
    SettingsDep,
    WriteSessionDep,
)
from leaderboard.core.errors import ApiError
from leaderboard.models import (
    Participant,
    ParticipantCreate,
    ParticipantPublic,
    ParticipantRegistered,
    SubmissionsPublic,
)
from leaderboard.present import submission_public

router = APIRouter(prefix="/participants", tags=["participants"])


@router.post("", status_code=status.HTTP_201_CREATED)
def register(token: RegistrationGate, session: WriteSessionDep, settings: SettingsDep,
             participant_in: ParticipantCreate) -> ParticipantRegistered:
    """Register; the response holds the API key, which is never shown again. A name that
    looks like a taken one (case, width, Cyrillic/Greek look-alike letters) is a 409.

    The server's registration mode decides who may: ``open`` anyone (a few per client
    address), ``token`` with a ``Registration-Token`` header from the host, ``closed`` only
    the host (admin token, also allowed in the other modes)."""
    participant, key = crud.create_participant(session=session, participant_in=participant_in,
                                               key_ttl=settings.api_key_ttl(),
                                               registration_token=token)
    return ParticipantRegistered(**participant.model_dump(), api_key=key)


@router.post("/me/key")
def rotate_my_key(session: WriteSessionDep, settings: SettingsDep,
                  participant: CurrentParticipant) -> ParticipantRegistered:
    """Replace your API key; the old one stops working at once. The new one is shown once."""
    key = crud.rotate_key(session=session, participant=participant,
                          key_ttl=settings.api_key_ttl())
    return ParticipantRegistered(**participant.model_dump(), api_key=key)


@router.delete("/me/key", status_code=status.HTTP_204_NO_CONTENT)
def revoke_my_key(session: WriteSessionDep, participant: CurrentParticipant) -> None:
    """Revoke your API key (e.g. it leaked); only the host can issue a new one."""
    crud.revoke_key(session=session, participant_id=participant.id or 0)


@router.post("/{participant_id}/key", dependencies=[AdminDep])
def issue_key(session: WriteSessionDep, settings: SettingsDep,
              participant_id: ParticipantId) -> ParticipantRegistered:
    """Issue a new key to a participant (admin): after expiry or revocation."""
    participant = session.get(Participant, participant_id)
    if participant is None:
        raise ApiError(404, f"no participant {participant_id}")
    key = crud.rotate_key(session=session, participant=participant,
                          key_ttl=settings.api_key_ttl())
    return ParticipantRegistered(**participant.model_dump(), api_key=key)


@router.delete("/{participant_id}/key", status_code=status.HTTP_204_NO_CONTENT,
               dependencies=[AdminDep])
def revoke_key(session: WriteSessionDep, participant_id: ParticipantId) -> None:
    """Revoke a participant's key (admin)."""
    crud.revoke_key(session=session, participant_id=participant_id)


@router.get("/me")
def me(participant: CurrentParticipant) -> ParticipantPublic:
    return ParticipantPublic(**participant.model_dump())


@router.get("/me/submissions")
def my_submissions(request: Request, session: SessionDep, participant: CurrentParticipant,
                   limit: int = Query(100, ge=1, le=500),
                   offset: int = Query(0, ge=0, le=OFFSET_MAX)) -> SubmissionsPublic:
    """Your submissions, rejected ones and their reasons included."""
    rows, count = crud.list_own_submissions(session=session, participant=participant,
                                            limit=limit, offset=offset)
    base = str(request.base_url)
    return SubmissionsPublic(data=[submission_public(session=session, submission=s,
                                                     base_url=base) for s in rows],
                             count=count)

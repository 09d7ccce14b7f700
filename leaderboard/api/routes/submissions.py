from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlmodel import Session

from leaderboard import crud
from leaderboard.api.deps import (
    AdminDep,
    CacheDep,
    CurrentParticipant,
    IsAdmin,
    OptionalParticipant,
    SessionDep,
    WriteSessionDep,
)
from leaderboard.cache import LeaderboardCache
from leaderboard.core.errors import ApiError, error_response
from leaderboard.models import (
    ErrorPublic,
    Participant,
    Submission,
    SubmissionCreate,
    SubmissionPublic,
    SubmissionStatus,
    SubmissionUpdate,
)
from leaderboard.present import submission_public

router = APIRouter(tags=["submissions"])

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1,
                                              max_length=200)]
_REJECTED = {"model": ErrorPublic,
             "description": "invalid request, or the checker refused it (stored; every reason "
                            "in details, its submission_id and url alongside)"}


def _respond(*, request: Request, session: Session, submission: Submission,
             created: bool) -> JSONResponse:
    public = submission_public(session=session, submission=submission,
                               base_url=str(request.base_url))
    headers = {} if created else {"Idempotent-Replayed": "true"}
    if submission.status == SubmissionStatus.REJECTED:
        return error_response(422, f"submission rejected: {len(submission.reasons)} "
                                   "check(s) failed", code="submission_rejected",
                              details=submission.reasons, headers=headers,
                              submission_id=str(submission.id), url=public.url)
    headers["Location"] = public.url or ""
    return JSONResponse(jsonable_encoder(public), status_code=201, headers=headers)


def _submit(*, request: Request, session: Session, cache: LeaderboardCache, slug: str,
            participant: Participant | None, submission_in: SubmissionCreate,
            idempotency_key: str | None, is_baseline: bool) -> JSONResponse:
    tournament = crud.get_tournament(session=session, slug=slug)
    submission, created = crud.create_submission(
        session=session, tournament=tournament, participant=participant,
        submission_in=submission_in, idempotency_key=idempotency_key, is_baseline=is_baseline)
    if created:
        cache.invalidate(slug)
    return _respond(request=request, session=session, submission=submission, created=created)


@router.post("/tournaments/{slug}/submissions", status_code=status.HTTP_201_CREATED,
             response_model=SubmissionPublic, responses={422: _REJECTED})
def submit(request: Request, session: WriteSessionDep, cache: CacheDep,
           participant: CurrentParticipant, slug: str, submission_in: SubmissionCreate,
           idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Submit a TrialResult. A retry with the same ``Idempotency-Key`` returns the first
    response; the same key with another body is 409. Rejected submissions are stored and
    answered with 422 and every reason."""
    return _submit(request=request, session=session, cache=cache, slug=slug,
                   participant=participant, submission_in=submission_in,
                   idempotency_key=idempotency_key, is_baseline=False)


@router.post("/tournaments/{slug}/baseline", status_code=status.HTTP_201_CREATED,
             response_model=SubmissionPublic, responses={422: _REJECTED},
             dependencies=[AdminDep])
def submit_baseline(request: Request, session: WriteSessionDep, cache: CacheDep, slug: str,
                    submission_in: SubmissionCreate,
                    idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """The host's baseline (admin token): shown and marked on the leaderboard, never ranked."""
    return _submit(request=request, session=session, cache=cache, slug=slug,
                   participant=None, submission_in=submission_in,
                   idempotency_key=idempotency_key, is_baseline=True)


def _visible(submission: Submission, participant: Participant | None, admin: bool) -> bool:
    owner = participant is not None and participant.id == submission.participant_id
    return submission.status != SubmissionStatus.REJECTED or owner or admin


@router.get("/submissions/{submission_id}",
            openapi_extra={"security": [{}, {"HTTPBearer": []}]})  # the key is optional
def show_submission(request: Request, session: SessionDep, submission_id: uuid.UUID,
                    participant: OptionalParticipant, admin: IsAdmin) -> SubmissionPublic:
    """Anyone can read a ranked submission; a rejected one only its owner (or the admin)."""
    submission = crud.get_submission(session=session, submission_id=submission_id)
    if not _visible(submission, participant, admin):
        raise ApiError(404, f"no submission {submission_id}")
    return submission_public(session=session, submission=submission,
                             base_url=str(request.base_url))


@router.patch("/submissions/{submission_id}")
def update_submission(request: Request, session: WriteSessionDep, submission_id: uuid.UUID,
                      participant: CurrentParticipant,
                      submission_in: SubmissionUpdate) -> SubmissionPublic:
    """Edit the method description or code URL of your own submission."""
    submission = crud.get_submission(session=session, submission_id=submission_id)
    if submission.participant_id != participant.id:
        if not _visible(submission, participant, False):
            raise ApiError(404, f"no submission {submission_id}")
        raise ApiError(403, "you can only change your own submissions")
    submission = crud.update_submission(session=session, submission=submission,
                                        submission_in=submission_in)
    return submission_public(session=session, submission=submission,
                             base_url=str(request.base_url))

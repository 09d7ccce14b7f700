from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request, status
from fastapi.responses import Response

from leaderboard import crud
from leaderboard.api.deps import (
    AdminDep,
    CurrentParticipant,
    IsAdmin,
    OptionalParticipant,
    ParticipantKey,
    SessionDep,
    WriteSessionDep,
)
from leaderboard.batch import Pending, Stored
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
from leaderboard.present import public_of, submission_public

router = APIRouter(tags=["submissions"])

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1,
                                              max_length=200)]
_REJECTED = {"model": ErrorPublic,
             "description": "invalid request, or the checker refused it (stored; every reason "
                            "in details, its submission_id and url alongside)"}


def _respond(*, request: Request, slug: str, stored: Stored) -> Response:
    row = stored.row
    public = public_of(row, base_url=str(request.base_url), tournament=slug,
                       participant=stored.participant_name, referee=stored.referee)
    headers = {} if stored.created else {"Idempotent-Replayed": "true"}
    if row["status"] == SubmissionStatus.REJECTED:
        return error_response(422, f"submission rejected: {len(row['reasons'])} "
                                   "check(s) failed", code="submission_rejected",
                              details=row["reasons"], headers=headers,
                              submission_id=str(row["id"]), url=public.url)
    headers["Location"] = public.url or ""
    return Response(public.model_dump_json(), status_code=201, headers=headers,
                    media_type="application/json")


async def _submit(*, request: Request, item: Pending) -> Response:
    """Hand the submission to the app's writer (group commit) and answer its outcome."""
    state = request.app.state
    outcome = await state.writer.submit(item)
    if isinstance(outcome, ApiError):
        raise outcome
    if outcome.created:
        state.cache.invalidate(item.slug)
    return _respond(request=request, slug=item.slug, stored=outcome)


@router.post("/tournaments/{slug}/submissions", status_code=status.HTTP_201_CREATED,
             response_model=SubmissionPublic, responses={422: _REJECTED})
async def submit(request: Request, api_key: ParticipantKey,
                 slug: str, submission_in: SubmissionCreate,
                 idempotency_key: IdempotencyKey = None) -> Response:
    """Submit a TrialResult. A retry with the same ``Idempotency-Key`` returns the first
    response; the same key with another body is 409. Rejected submissions are stored and
    answered with 422 and every reason."""
    return await _submit(request=request, item=Pending(
        slug=slug, api_key=api_key, submission_in=submission_in,
        idempotency_key=idempotency_key))


@router.post("/tournaments/{slug}/baseline", status_code=status.HTTP_201_CREATED,
             response_model=SubmissionPublic, responses={422: _REJECTED},
             dependencies=[AdminDep])
async def submit_baseline(request: Request, slug: str,
                          submission_in: SubmissionCreate,
                          idempotency_key: IdempotencyKey = None) -> Response:
    """The host's baseline (admin token): shown and marked on the leaderboard, never ranked."""
    return await _submit(request=request, item=Pending(
        slug=slug, api_key=None, submission_in=submission_in,
        idempotency_key=idempotency_key, is_baseline=True))


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

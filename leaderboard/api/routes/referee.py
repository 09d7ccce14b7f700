from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from leaderboard import crud
from leaderboard.api.deps import AdminDep, CacheDep, WriteSessionDep
from leaderboard.core.db import as_utc
from leaderboard.models import RefereeCheckCreate, RefereePublic, Tournament

router = APIRouter(prefix="/submissions", tags=["referee"])


@router.post("/{submission_id}/referee", status_code=status.HTTP_201_CREATED,
             dependencies=[AdminDep])
def referee(session: WriteSessionDep, cache: CacheDep, submission_id: uuid.UUID,
            check_in: RefereeCheckCreate) -> RefereePublic:
    """Record a re-measurement (admin). Without a verdict, one is derived: minimize metrics
    within 10% of the claim and maximize metrics within 1% verify it; else disputed."""
    submission = crud.get_submission(session=session, submission_id=submission_id)
    check = crud.create_referee_check(session=session, submission=submission,
                                      check_in=check_in)
    tournament = session.get(Tournament, submission.tournament_id)
    if tournament is not None:
        cache.invalidate(tournament.slug)
    check.created_at = as_utc(check.created_at)  # SQLite hands it back naive
    return RefereePublic.model_validate(check, from_attributes=True)

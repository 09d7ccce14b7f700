"""Turn rows into the API's public shapes (shared by the API and the website)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from leaderboard import crud
from leaderboard.core.db import as_utc
from leaderboard.models import (
    Objective,
    RefereePublic,
    Submission,
    SubmissionPublic,
    Tournament,
    TournamentPublic,
)


def tournament_public(tournament: Tournament, *, is_open: bool) -> TournamentPublic:
    data = tournament.model_dump(warnings=False)
    data["objectives"] = [Objective(**o) for o in tournament.objectives]
    for name in ("opens_at", "closes_at", "created_at"):  # SQLite hands them back naive
        if data.get(name) is not None:
            data[name] = as_utc(data[name])
    return TournamentPublic(**data, is_open=is_open)


def submission_url(base_url: str, submission: Submission) -> str:
    return f"{base_url.rstrip('/')}/api/v1/submissions/{submission.id}"


def submission_public(*, session: Session, submission: Submission, base_url: str,
                      tournament: Tournament | None = None) -> SubmissionPublic:
    tournament = tournament or session.get(Tournament, submission.tournament_id)
    names = crud.participant_names(session=session, ids={submission.participant_id}
                                   if submission.participant_id is not None else set())
    referee = crud.latest_referee(session=session, submission_id=submission.id)
    url = submission_url(base_url, submission)
    data: dict[str, Any] = submission.model_dump(warnings=False,
        include={"id", "is_baseline", "status", "reasons", "feasible", "unmet",
                 "hardware_profile", "variant", "record", "created_at", "method",
                 "code_url"})
    data["created_at"] = as_utc(submission.created_at)
    if referee is not None:
        referee.created_at = as_utc(referee.created_at)
    return SubmissionPublic(
        **data, tournament=tournament.slug if tournament else "",
        participant=names.get(submission.participant_id or -1),
        url=url, reproduce=f"podium reproduce {url}",
        export=f"podium export --submission {url} ./submission-{str(submission.id)[:8]}",
        referee=RefereePublic.model_validate(referee, from_attributes=True) if referee
        else None)

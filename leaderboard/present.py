"""Turn rows into the API's public shapes (shared by the API and the website)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import Session

from leaderboard import crud
from leaderboard.core.db import as_utc
from leaderboard.models import (
    Objective,
    RefereeCheck,
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


PUBLIC_FIELDS = frozenset({"id", "is_baseline", "status", "reasons", "feasible", "unmet",
                           "hardware_profile", "variant", "record", "created_at", "method",
                           "code_url"})


def submission_public(*, session: Session, submission: Submission, base_url: str,
                      tournament: Tournament | None = None) -> SubmissionPublic:
    tournament = tournament or session.get(Tournament, submission.tournament_id)
    names = crud.participant_names(session=session, ids={submission.participant_id}
                                   if submission.participant_id is not None else set())
    return public_of(submission.model_dump(warnings=False, include=set(PUBLIC_FIELDS)),
                     base_url=base_url, tournament=tournament.slug if tournament else "",
                     participant=names.get(submission.participant_id or -1),
                     referee=crud.latest_referee(session=session, submission_id=submission.id))


def public_of(row: Mapping[str, Any], *, base_url: str, tournament: str,
              participant: str | None, referee: RefereeCheck | None) -> SubmissionPublic:
    """The public shape of a submission's columns (``row``), with no query."""
    url = f"{base_url.rstrip('/')}/api/v1/submissions/{row['id']}"
    data = {name: row[name] for name in PUBLIC_FIELDS}
    data["created_at"] = as_utc(row["created_at"])
    if referee is not None:
        referee.created_at = as_utc(referee.created_at)
    return SubmissionPublic(
        **data, tournament=tournament, participant=participant,
        url=url, reproduce=f"podium reproduce {url}",
        export=f"podium export --submission {url} ./submission-{str(row['id'])[:8]}",
        referee=RefereePublic.model_validate(referee, from_attributes=True) if referee
        else None)

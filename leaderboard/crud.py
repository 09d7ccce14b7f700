"""Every read and write of the leaderboard's tables; keyword-only arguments throughout."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from leaderboard.checker import CheckContext, run_checks
from leaderboard.core.db import as_utc, utcnow
from leaderboard.core.errors import ApiError
from leaderboard.core.security import (
    hash_key,
    key_matches,
    key_prefix,
    new_api_key,
    new_registration_token,
)
from leaderboard.models import (
    Participant,
    ParticipantCreate,
    RefereeCheck,
    RefereeCheckCreate,
    RegistrationToken,
    RegistrationTokenCreate,
    Submission,
    SubmissionCreate,
    SubmissionStatus,
    SubmissionUpdate,
    Tournament,
    TournamentCreate,
    TournamentStatus,
    Verdict,
)
from leaderboard.names import skeleton
from tuner.trial.constraints import parse_constraints, unmet
from tuner.trial.results import METRIC_DIRECTIONS, TrialResult

# Referee tolerance: a re-measurement within these ratios of the claim verifies it.
REFEREE_SLOWER_TOLERANCE = 1.10  # minimize metrics: re-measured / claimed <= 1.10
REFEREE_WORSE_TOLERANCE = 0.99  # maximize metrics: re-measured / claimed >= 0.99


def _insert_unique(session: Session, row: Any, *, conflict: str) -> Any:
    """Insert ``row``; a unique-constraint clash is a 409 with ``conflict``, nothing kept."""
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ApiError(409, conflict) from None
    session.refresh(row)
    return row


# ---------------------------------------------------------------------------- tournaments

def create_tournament(*, session: Session, tournament_in: TournamentCreate) -> Tournament:
    data = tournament_in.model_dump(mode="json", exclude={"opens_at", "closes_at"})
    tournament = Tournament(**data, opens_at=tournament_in.opens_at,
                            closes_at=tournament_in.closes_at)
    return _insert_unique(session, tournament,
                          conflict=f"a tournament with slug {tournament_in.slug!r} exists")


def list_tournaments(*, session: Session, limit: int, offset: int) -> tuple[list[Tournament],
                                                                             int]:
    count = session.exec(select(func.count()).select_from(Tournament)).one()
    rows = session.exec(select(Tournament).order_by(Tournament.created_at.desc(),  # type: ignore[union-attr]
                                                    Tournament.id.desc())  # type: ignore[union-attr]
                        .offset(offset).limit(limit)).all()
    return list(rows), count


def get_tournament(*, session: Session, slug: str) -> Tournament:
    tournament = session.exec(select(Tournament).where(Tournament.slug == slug)).first()
    if tournament is None:
        raise ApiError(404, f"no tournament {slug!r}")
    return tournament


def is_open(tournament: Tournament, now: datetime) -> bool:
    return (tournament.status == TournamentStatus.OPEN
            and (tournament.opens_at is None or as_utc(tournament.opens_at) <= now)
            and (tournament.closes_at is None or now < as_utc(tournament.closes_at)))


# ---------------------------------------------------------------------------- participants

def create_participant(*, session: Session, participant_in: ParticipantCreate,
                       key_ttl: timedelta | None = None,
                       registration_token: str | None = None) -> tuple[Participant, str]:
    """Register a participant; return it with its API key (the only time it is visible).

    A name that looks like a taken one (same :func:`~leaderboard.names.skeleton`) is a 409.
    With ``registration_token``, one of its uses is spent in the same transaction (a 409
    gives it back); an unknown, used-up or expired token is a 403.
    """
    key, prefix, digest = new_api_key()
    now = utcnow()
    if registration_token is not None and not use_registration_token(
            session=session, token=registration_token, now=now):
        session.rollback()
        raise ApiError(403, "this registration token is unknown, used up or expired; ask the "
                            "host for another", code="registration_token_invalid")
    participant = Participant(name=participant_in.name,
                              name_skeleton=skeleton(participant_in.name), key_prefix=prefix,
                              key_hash=digest, created_at=now,
                              key_expires_at=now + key_ttl if key_ttl else None)
    _insert_unique(session, participant,
                   conflict=f"the name {participant_in.name!r} is taken or looks like a "
                            "taken name")
    return participant, key


def rotate_key(*, session: Session, participant: Participant,
               key_ttl: timedelta | None = None) -> str:
    """Replace the participant's key (the old one stops working at once); return the new one."""
    key, prefix, digest = new_api_key()
    row = session.get(Participant, participant.id)
    if row is None:
        raise ApiError(404, "no such participant")
    row.key_prefix, row.key_hash = prefix, digest
    row.key_expires_at = utcnow() + key_ttl if key_ttl else None
    row.revoked_at = None
    _insert_unique(session, row, conflict="key prefix clash; retry")
    participant.key_expires_at = row.key_expires_at
    return key


def revoke_key(*, session: Session, participant_id: int) -> Participant:
    """Revoke a participant's key; every later request with it is a 401 saying so."""
    row = session.get(Participant, participant_id)
    if row is None:
        raise ApiError(404, f"no participant {participant_id}")
    row.revoked_at = row.revoked_at or utcnow()
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def authenticate(*, session: Session, api_key: str) -> Participant | None:
    prefix = key_prefix(api_key)
    if prefix is None:
        return None
    participant = session.exec(select(Participant)
                               .where(Participant.key_prefix == prefix)).first()
    if participant is None or not key_matches(api_key, participant.key_hash):
        return None
    return participant


def key_refusal(participant: Participant, now: datetime) -> ApiError | None:
    """The 401 for a revoked or expired key, else None."""
    if participant.revoked_at is not None:
        revoked = as_utc(participant.revoked_at)
        return ApiError(401, f"this API key was revoked on {revoked:%Y-%m-%d}; ask the host "
                             "for a new one", code="key_revoked",
                        headers={"WWW-Authenticate": "Bearer"})
    expires = participant.key_expires_at
    if expires is not None and as_utc(expires) <= now:
        return ApiError(401, f"this API key expired on {as_utc(expires):%Y-%m-%d}; ask the "
                             "host for a new one", code="key_expired",
                        headers={"WWW-Authenticate": "Bearer"})
    return None


# ---------------------------------------------------------------------------- registration

def create_registration_token(*, session: Session, token_in: RegistrationTokenCreate
                              ) -> tuple[RegistrationToken, str]:
    """Store a new registration token; return it with the token (the only time it is shown)."""
    token, digest = new_registration_token()
    row = RegistrationToken(token_hash=digest, uses=token_in.uses, uses_left=token_in.uses,
                            note=token_in.note, expires_at=token_in.expires_at)
    session.add(row)
    session.commit()
    session.refresh(row)
    return row, token


def use_registration_token(*, session: Session, token: str, now: datetime) -> bool:
    """Spend one use of ``token`` in the caller's transaction; False if none is left.

    One conditional UPDATE, so two registrations racing for a token's last use cannot
    both get it.
    """
    table = RegistrationToken
    result = session.exec(update(table).where(  # type: ignore[call-overload]
        table.token_hash == hash_key(token), table.uses_left > 0,  # type: ignore[arg-type]
        or_(table.expires_at.is_(None), table.expires_at > now))  # type: ignore[union-attr]
        .values(uses_left=table.uses_left - 1))
    return result.rowcount == 1


# ---------------------------------------------------------------------------- submissions

def request_digest(*, slug: str, submission_in: SubmissionCreate, is_baseline: bool) -> str:
    body = {"tournament": slug, "baseline": is_baseline,
            "submission": submission_in.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def find_idempotent(*, session: Session, participant_id: int | None,
                    idempotency_key: str) -> Submission | None:
    return session.exec(select(Submission).where(
        Submission.participant_id == participant_id,
        Submission.idempotency_key == idempotency_key)).first()


def idempotency_conflict() -> ApiError:
    return ApiError(409, "this Idempotency-Key was used with a different request body",
                    code="idempotency_conflict")


def _replay(existing: Submission, digest: str) -> Submission:
    if existing.request_sha256 != digest:
        raise idempotency_conflict()
    return existing


def _counts(*, session: Session, tournament_id: int, participant_id: int,
            now: datetime) -> tuple[int, int]:
    counted = (Submission.tournament_id == tournament_id,
               Submission.participant_id == participant_id,
               Submission.status != SubmissionStatus.REJECTED)
    total = session.exec(select(func.count()).select_from(Submission).where(*counted)).one()
    midnight = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
    today = session.exec(select(func.count()).select_from(Submission)
                         .where(*counted, Submission.created_at >= midnight)).one()
    return today, total


def submission_values(*, tournament: Tournament, participant_id: int | None,
                      is_baseline: bool, submission_in: SubmissionCreate, reasons: list[str],
                      failed: list[str], idempotency_key: str | None, digest: str,
                      now: datetime) -> dict[str, Any]:
    """The column values of a checked submission: rejected when the checker gave a reason."""
    record: TrialResult = submission_in.record
    return {
        "id": uuid.uuid4(), "tournament_id": tournament.id, "participant_id": participant_id,
        "is_baseline": is_baseline,
        "status": SubmissionStatus.REJECTED if reasons else SubmissionStatus.ACCEPTED,
        "reasons": reasons, "feasible": not failed, "unmet": failed,
        "record": record.model_dump(mode="json"), "hardware_profile": record.hardware.profile,
        "variant": record.workload.variant, "config_digest": record.config_digest,
        "metrics": record.metrics.model_dump(mode="json"), "method": submission_in.method,
        "code_url": submission_in.code_url, "idempotency_key": idempotency_key,
        "request_sha256": digest, "created_at": now}


def create_submission(*, session: Session, tournament: Tournament,
                      participant: Participant | None, submission_in: SubmissionCreate,
                      idempotency_key: str | None, is_baseline: bool = False,
                      now: datetime | None = None) -> tuple[Submission, bool]:
    """Check and store a submission (accepted or rejected); return it and whether it is new.

    Runs in one write transaction (``BEGIN IMMEDIATE`` on SQLite, a row lock on the
    participant elsewhere), so quotas and Idempotency-Keys hold under concurrent writers.
    A retry with the same key and body returns the stored submission; another body is 409.
    """
    now = now or utcnow()
    participant_id = participant.id if participant else None
    digest = request_digest(slug=tournament.slug, submission_in=submission_in,
                            is_baseline=is_baseline)
    if participant is not None:
        session.exec(select(Participant.id).where(Participant.id == participant_id)
                     .with_for_update()).first()
    if idempotency_key is not None:
        existing = find_idempotent(session=session, participant_id=participant_id,
                                   idempotency_key=idempotency_key)
        if existing is not None:
            session.rollback()
            return _replay(existing, digest), False

    today = total = 0
    if participant_id is not None and tournament.id is not None:
        today, total = _counts(session=session, tournament_id=tournament.id,
                               participant_id=participant_id, now=now)
    record: TrialResult = submission_in.record
    reasons = run_checks(CheckContext(tournament=tournament, record=record, now=now,
                                      submitted_today=today, submitted_total=total,
                                      is_baseline=is_baseline))
    failed = unmet(parse_constraints(tournament.constraints), record)
    submission = Submission(**submission_values(
        tournament=tournament, participant_id=participant_id, is_baseline=is_baseline,
        submission_in=submission_in, reasons=reasons, failed=failed,
        idempotency_key=idempotency_key, digest=digest, now=now))
    session.add(submission)
    try:
        session.commit()
    except IntegrityError:
        # Another request with this Idempotency-Key won the race (PostgreSQL).
        session.rollback()
        existing = find_idempotent(session=session, participant_id=participant_id,
                                   idempotency_key=idempotency_key or "")
        if existing is None:
            raise
        return _replay(existing, digest), False
    session.refresh(submission)
    return submission, True


def get_submission(*, session: Session, submission_id: uuid.UUID) -> Submission:
    submission = session.get(Submission, submission_id)
    if submission is None:
        raise ApiError(404, f"no submission {submission_id}")
    return submission


def update_submission(*, session: Session, submission: Submission,
                      submission_in: SubmissionUpdate) -> Submission:
    for name, value in submission_in.model_dump(exclude_unset=True).items():
        setattr(submission, name, value)
    session.add(submission)
    session.commit()
    session.refresh(submission)
    return submission


def list_own_submissions(*, session: Session, participant: Participant, limit: int,
                         offset: int) -> tuple[list[Submission], int]:
    where = Submission.participant_id == participant.id
    count = session.exec(select(func.count()).select_from(Submission).where(where)).one()
    rows = session.exec(select(Submission).where(where)
                        .order_by(Submission.created_at.desc())  # type: ignore[attr-defined]
                        .offset(offset).limit(limit)).all()
    return list(rows), count


def latest_referee(*, session: Session, submission_id: uuid.UUID) -> RefereeCheck | None:
    return session.exec(select(RefereeCheck).where(RefereeCheck.submission_id == submission_id)
                        .order_by(RefereeCheck.created_at.desc(),  # type: ignore[attr-defined]
                                  RefereeCheck.id.desc())  # type: ignore[union-attr]
                        ).first()


def participant_names(*, session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.exec(select(Participant.id, Participant.name)
                        .where(Participant.id.in_(ids))).all()  # type: ignore[union-attr]
    return {pid: name for pid, name in rows}


# ---------------------------------------------------------------------------- referee

def referee_ratios(claimed: dict[str, Any], remeasured: dict[str, float]) -> dict[str, float]:
    ratios = {}
    for name, value in remeasured.items():
        base = claimed.get(name)
        if isinstance(base, int | float) and base != 0:
            ratios[name] = value / base
    return ratios


def referee_verdict(ratios: dict[str, float]) -> Verdict:
    for name, ratio in ratios.items():
        if METRIC_DIRECTIONS[name] == "minimize" and ratio > REFEREE_SLOWER_TOLERANCE:
            return Verdict.DISPUTED
        if METRIC_DIRECTIONS[name] == "maximize" and ratio < REFEREE_WORSE_TOLERANCE:
            return Verdict.DISPUTED
    return Verdict.VERIFIED


def create_referee_check(*, session: Session, submission: Submission,
                         check_in: RefereeCheckCreate) -> RefereeCheck:
    if submission.status == SubmissionStatus.REJECTED:
        raise ApiError(409, "a rejected submission cannot be refereed")
    ratios = referee_ratios(submission.metrics, check_in.metrics)
    verdict = check_in.verdict or referee_verdict(ratios)
    check = RefereeCheck(submission_id=submission.id, metrics=check_in.metrics, ratios=ratios,
                         verdict=verdict, note=check_in.note)
    submission.status = SubmissionStatus(verdict.value)
    session.add(check)
    session.add(submission)
    session.commit()
    session.refresh(check)
    return check


# ---------------------------------------------------------------------------- leaderboard

def leaderboard_rows(*, session: Session, tournament: Tournament, hardware: str | None,
                     verified_only: bool) -> list[dict[str, Any]]:
    """Every ranked (non-rejected) submission as a plain dict for :mod:`leaderboard.ranking`."""
    ranked = [s.value for s in SubmissionStatus if s.is_ranked()]
    query = (select(Submission.id, Participant.name, Submission.is_baseline, Submission.status,
                    Submission.feasible, Submission.unmet, Submission.hardware_profile,
                    Submission.variant, Submission.record, Submission.metrics,
                    Submission.created_at)
             .join(Participant, Participant.id == Submission.participant_id,  # type: ignore[arg-type]
                   isouter=True)
             .where(Submission.tournament_id == tournament.id,
                    Submission.status.in_(ranked)))  # type: ignore[attr-defined]
    if hardware:
        query = query.where(Submission.hardware_profile == hardware)
    rows = []
    for (sid, name, baseline, status, feasible, unmet_, hw, variant, record, metrics,
         created) in session.exec(query).all():
        if verified_only and not baseline and status != SubmissionStatus.VERIFIED:
            continue
        rows.append({"submission_id": str(sid), "participant": name,
                     "is_baseline": baseline, "status": status,
                     "feasible": feasible, "unmet": unmet_, "hardware_profile": hw,
                     "variant": variant, "config": record.get("config", {}),
                     "metrics": metrics, "created_at": as_utc(created)})
    return rows

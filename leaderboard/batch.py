"""Store a batch of submissions in one transaction: the database half of group commit.

:mod:`leaderboard.writer` hands :func:`create_submissions` every submission that queued up
while the previous batch was being written. Each one is answered exactly as
:func:`leaderboard.crud.create_submission` answers it alone (the same checks, quotas,
Idempotency-Key replays and 409s); the batch shares the reads and the commit:

- one query for the tournaments, one for the participants (their API keys are checked
  here, in the transaction, with the 401s of :mod:`leaderboard.api.deps`), one for the
  Idempotency-Keys, one quota count per tournament (later batch-mates count the earlier
  ones: a quota holds inside a batch too);
- one INSERT of every new row; if it fails on a unique key (another process won an
  Idempotency-Key race, PostgreSQL), the batch is checked again and each row inserted in
  its own SAVEPOINT, so one failing row never takes its batch-mates with it.

Per-item failures (401 key invalid, revoked or expired; 404 no tournament; 409
Idempotency-Key reused with another body) come back as
:class:`~leaderboard.core.errors.ApiError` in that item's slot; a database fault that
stops the whole transaction (locked, full, read-only) is raised for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from sqlalchemy import and_, case, func, insert, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from leaderboard import crud
from leaderboard.checker import CheckContext, run_checks
from leaderboard.core.errors import ApiError
from leaderboard.core.security import key_matches, key_prefix
from leaderboard.models import (
    Participant,
    RefereeCheck,
    Submission,
    SubmissionCreate,
    SubmissionStatus,
    Tournament,
)
from tuner.trial.constraints import parse_constraints, unmet


@dataclass(frozen=True)
class Pending:
    """One submission waiting for its batch.

    ``api_key`` is the participant's key as sent (well-formed, not yet verified: the batch
    checks it); None for the host's baseline, whose admin token the request checked.
    """

    slug: str
    api_key: str | None
    submission_in: SubmissionCreate
    idempotency_key: str | None
    is_baseline: bool = False


@dataclass
class Stored:
    """What a request needs to answer: the row's columns, whether it is new, who sent it."""

    row: dict[str, Any]
    created: bool
    participant_name: str | None
    referee: RefereeCheck | None = None


Outcome = Stored | ApiError
_TABLE = Submission.__table__  # type: ignore[attr-defined]


def stored_row(submission: Submission) -> dict[str, Any]:
    return {column.name: getattr(submission, column.name) for column in _TABLE.columns}


def _tournaments(session: Session, slugs: set[str]) -> dict[str, Tournament]:
    rows = session.exec(select(Tournament).where(Tournament.slug.in_(slugs))).all()  # type: ignore[attr-defined]
    return {t.slug: t for t in rows}


def _participants(session: Session, keys: set[str]) -> dict[str, Participant]:
    """The participants whose key prefixes were sent, their rows held until the commit
    (PostgreSQL: another process's quota count for them waits; SQLite: no-op)."""
    prefixes = {p for p in map(key_prefix, keys) if p is not None}
    if not prefixes:
        return {}
    rows = session.exec(select(Participant)
                        .where(Participant.key_prefix.in_(sorted(prefixes)))  # type: ignore[attr-defined]
                        .order_by(Participant.id).with_for_update()).all()
    return {p.key_prefix: p for p in rows}


def _stored_keys(session: Session, wanted: dict[int | None, set[str]]
                 ) -> dict[tuple[int | None, str], dict[str, Any]]:
    """The stored rows with these Idempotency-Keys per participant (the replays), as plain
    columns. Participants and keys are asked as two lists (the (participant_id,
    idempotency_key) index serves, and the statement's shape, hence its compiled form,
    does not change with the batch); a row of another participant's key is not looked up.
    """
    if not wanted:
        return {}
    column = _TABLE.c
    owners = [pid for pid in wanted if pid is not None]
    keys = sorted({key for pid, group in wanted.items() if pid is not None for key in group})
    baseline = sorted(wanted.get(None, ()))
    rows = session.execute(select(_TABLE).where(or_(
        and_(column.participant_id.in_(owners), column.idempotency_key.in_(keys)),
        and_(column.participant_id.is_(None), column.idempotency_key.in_(baseline)))))
    return {(row["participant_id"], row["idempotency_key"]): dict(row)
            for row in rows.mappings()}


def _referees(session: Session, ids: list[Any]) -> dict[Any, RefereeCheck]:
    """The latest referee check of each submission in ``ids`` that has one."""
    if not ids:
        return {}
    rows = session.exec(select(RefereeCheck).where(RefereeCheck.submission_id.in_(ids))  # type: ignore[attr-defined]
                        .order_by(RefereeCheck.created_at, RefereeCheck.id)).all()
    return {check.submission_id: check for check in rows}  # the last one wins


def _counts(session: Session, pairs: set[tuple[int, int]],
            midnight: datetime) -> dict[tuple[int, int], list[int]]:
    """``{(tournament_id, participant_id): [today, total]}`` of non-rejected submissions."""
    counts: dict[tuple[int, int], list[int]] = {pair: [0, 0] for pair in pairs}
    today = func.count(case((Submission.created_at >= midnight, 1)))  # type: ignore[operator]
    for tournament_id in {t for t, _ in pairs}:
        ids = [p for t, p in pairs if t == tournament_id]
        rows = session.exec(
            select(Submission.participant_id, today, func.count())
            .where(Submission.tournament_id == tournament_id,
                   Submission.participant_id.in_(ids),  # type: ignore[union-attr]
                   Submission.status != SubmissionStatus.REJECTED)
            .group_by(Submission.participant_id)).all()
        for participant_id, today_count, total in rows:
            counts[(tournament_id, participant_id)] = [int(today_count), int(total)]
    return counts


class _Batch:
    """The state one batch shares: tournaments, stored and new Idempotency-Keys, counts."""

    def __init__(self, session: Session, items: list[Pending], now: datetime) -> None:
        self.session, self.now = session, now
        self.tournaments = _tournaments(session, {item.slug for item in items})
        self.participants = _participants(session, {item.api_key for item in items
                                                    if item.api_key is not None})
        participants = {p.id for p in self.participants.values() if p.id is not None}
        wanted: dict[int | None, set[str]] = {}
        for item in items:
            owner = self._owner(item)
            if item.idempotency_key is not None and owner is not False:
                wanted.setdefault(owner, set()).add(item.idempotency_key)
        self.keys = _stored_keys(session, wanted)
        midnight = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
        self.counts = _counts(session, {(t.id or 0, p) for t in self.tournaments.values()
                                        for p in participants}, midnight)

    def _owner(self, item: Pending) -> int | bool | None:
        """The id whose Idempotency-Keys ``item`` may replay (None: the host's baseline);
        False for a key that matches no participant (its item answers 401)."""
        if item.api_key is None:
            return None
        participant = self.participants.get(key_prefix(item.api_key) or "")
        return participant.id if participant is not None and participant.id else False

    def authenticate(self, item: Pending) -> Participant | ApiError | None:
        """The key's participant, or the 401 that :mod:`leaderboard.api.deps` would give."""
        if item.api_key is None:
            return None
        participant = self.participants.get(key_prefix(item.api_key) or "")
        if participant is None or not key_matches(item.api_key, participant.key_hash):
            return ApiError(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
        return crud.key_refusal(participant, self.now) or participant

    def check(self, item: Pending) -> Outcome:
        """Replay a stored Idempotency-Key, or build the new row (not yet inserted)."""
        participant = self.authenticate(item)
        if isinstance(participant, ApiError):
            return participant
        tournament = self.tournaments.get(item.slug)
        if tournament is None:
            return ApiError(404, f"no tournament {item.slug!r}")
        participant_id = participant.id if participant is not None else None
        name = participant.name if participant is not None else None
        digest = crud.request_digest(slug=item.slug, submission_in=item.submission_in,
                                     is_baseline=item.is_baseline)
        if item.idempotency_key is not None:
            existing = self.keys.get((participant_id, item.idempotency_key))
            if existing is not None:
                if existing["request_sha256"] != digest:
                    return crud.idempotency_conflict()
                return Stored(existing, False, name)
        today = total = 0
        count = None
        if participant_id is not None:
            count = self.counts.setdefault((tournament.id or 0, participant_id), [0, 0])
            today, total = count
        record = item.submission_in.record
        reasons = run_checks(CheckContext(tournament=tournament, record=record, now=self.now,
                                          submitted_today=today, submitted_total=total,
                                          is_baseline=item.is_baseline))
        failed = unmet(parse_constraints(tournament.constraints), record)
        row = crud.submission_values(
            tournament=tournament, participant_id=participant_id, is_baseline=item.is_baseline,
            submission_in=item.submission_in, reasons=reasons, failed=failed,
            idempotency_key=item.idempotency_key, digest=digest, now=self.now)
        if count is not None and not reasons:
            count[0] += 1
            count[1] += 1
        if item.idempotency_key is not None:  # a batch-mate with this key replays this row
            self.keys[(participant_id, item.idempotency_key)] = row
        return Stored(row, True, name)


def _insert_all(session: Session, outcomes: list[Outcome]) -> bool:
    """Insert every new row in one statement; False (nothing kept) on a unique-key clash.

    Plain column values into the table, not ORM objects: building SQLModel rows (or the
    ORM's bulk path) cost more than the INSERT itself.
    """
    rows = [o.row for o in outcomes if isinstance(o, Stored) and o.created]
    if not rows:
        return True
    try:
        session.execute(insert(_TABLE), rows)
    except IntegrityError:
        session.rollback()
        return False
    return True


def _insert_each(session: Session, outcomes: list[Outcome]) -> list[Outcome]:
    """Insert row by row, each in a SAVEPOINT: a clash answers that row alone."""
    answered: list[Outcome] = []
    instead: dict[int, Outcome] = {}  # a row that became a replay: its batch-mates' answer
    for outcome in outcomes:
        if isinstance(outcome, Stored) and outcome.created:
            inserted = _insert_one(session, outcome)
            if inserted is not outcome:
                instead[id(outcome.row)] = inserted
            outcome = inserted
        elif isinstance(outcome, Stored) and id(outcome.row) in instead:
            outcome = instead[id(outcome.row)]
        answered.append(outcome)
    return answered


def _insert_one(session: Session, outcome: Stored) -> Outcome:
    row = outcome.row
    # Not `with begin_nested()`: after SQLite's "disk full" the savepoint is gone, and its
    # rollback would hide that error behind "no such savepoint".
    savepoint = session.begin_nested()
    try:
        session.execute(insert(_TABLE), [row])
    except IntegrityError:
        savepoint.rollback()
        existing = crud.find_idempotent(session=session, participant_id=row["participant_id"],
                                        idempotency_key=row["idempotency_key"] or "")
        if existing is None:
            raise
        if existing.request_sha256 != row["request_sha256"]:
            return crud.idempotency_conflict()
        return Stored(stored_row(existing), False, outcome.participant_name)
    savepoint.commit()
    return outcome


def create_submissions(*, session: Session, items: list[Pending],
                       now: datetime) -> list[Outcome]:
    """Check and store ``items`` in one write transaction; one outcome per item, in order.

    Every row of the batch gets the same ``created_at`` (the transaction's time, as
    PostgreSQL's ``now()`` would give); a replay also carries the latest referee check.
    """
    batch = _Batch(session, items, now)
    outcomes = [batch.check(item) for item in items]
    if not _insert_all(session, outcomes):  # rare: another process won a key race
        batch = _Batch(session, items, now)
        outcomes = _insert_each(session, [batch.check(item) for item in items])
    replays = [o for o in outcomes if isinstance(o, Stored) and not o.created]
    referees = _referees(session, [o.row["id"] for o in replays])
    session.commit()
    for outcome in replays:
        outcome.referee = referees.get(outcome.row["id"])
    return outcomes

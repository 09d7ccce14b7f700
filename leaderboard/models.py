"""Tables and API shapes, every SQLModel variant of an entity together.

``XBase`` holds the shared fields, ``XCreate`` is what a client posts (unknown fields are
rejected), ``X(table=True)`` is the row, ``XPublic`` / ``XsPublic`` are what the API returns.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from sqlalchemy import JSON, DateTime, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from leaderboard.core.db import as_utc, utcnow
from leaderboard.names import NAME_MAX, normalize_name
from tuner.errors import ConstraintError
from tuner.trial.constraints import parse_constraint
from tuner.trial.results import METRICS, TrialResult

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
_FORBID = ConfigDict(extra="forbid")


class Division(StrEnum):
    CLOSED = "closed"  # the workload's reference model only; calibration allowed
    OPEN = "open"  # any variant; quality must be reported


class TournamentStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"


class SubmissionStatus(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    VERIFIED = "verified"
    DISPUTED = "disputed"

    def is_ranked(self) -> bool:
        return self is not SubmissionStatus.REJECTED


class Verdict(StrEnum):
    VERIFIED = "verified"
    DISPUTED = "disputed"


def _reject_non_finite(value: Any, path: str = "") -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"non-finite number at {path or 'top level'}")
    if isinstance(value, dict):
        for key, item in value.items():
            _reject_non_finite(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_non_finite(item, f"{path}[{index}]")


def _json_column() -> Any:
    return Field(default_factory=list, sa_type=JSON)


def _timestamp(**kwargs: Any) -> Any:
    return Field(sa_type=DateTime(timezone=True), **kwargs)


# ---------------------------------------------------------------------------- tournaments

class Objective(BaseModel):
    model_config = _FORBID

    metric: str
    direction: Literal["minimize", "maximize"] | None = None

    @model_validator(mode="after")
    def _known_metric(self) -> Objective:
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r} (metrics: {', '.join(METRICS)})")
        if self.direction is None:
            self.direction = METRICS[self.metric][1]
        return self


class TournamentBase(SQLModel):
    slug: str = Field(unique=True, index=True, max_length=63,
                      schema_extra={"pattern": SLUG_PATTERN})
    title: str = Field(max_length=200)
    description: str = Field(default="", max_length=20_000)
    workload_name: str = Field(max_length=200)
    workload_sha256: str = Field(max_length=64, schema_extra={"pattern": SHA256_PATTERN})
    division: Division = Field(default=Division.OPEN, sa_type=String(16))
    status: TournamentStatus = Field(default=TournamentStatus.OPEN, sa_type=String(16))
    quota_per_day: int = Field(default=20, ge=1, le=1_000_000)
    quota_total: int = Field(default=200, ge=1, le=10_000_000)
    reference_quality: float | None = Field(default=None, gt=0, le=1)
    reference_variant: str = Field(default="fp32", max_length=200)


class TournamentCreate(TournamentBase):
    model_config = _FORBID

    hardware_profiles: list[str] = Field(min_length=1, max_length=100)
    objectives: list[Objective] = Field(min_length=1, max_length=len(METRICS))
    constraints: list[str] = Field(default_factory=list, max_length=50)
    opens_at: datetime | None = None
    closes_at: datetime | None = None

    @field_validator("constraints")
    @classmethod
    def _parse_constraints(cls, values: list[str]) -> list[str]:
        try:
            return [str(parse_constraint(text)) for text in values]
        except ConstraintError as error:
            raise ValueError(str(error)) from None

    @model_validator(mode="after")
    def _consistent(self) -> TournamentCreate:
        metrics = [o.metric for o in self.objectives]
        if len(set(metrics)) != len(metrics):
            raise ValueError("an objective is listed twice")
        if self.opens_at and self.closes_at and self.closes_at <= self.opens_at:
            raise ValueError("closes_at must be after opens_at")
        return self


class Tournament(TournamentBase, table=True):
    __tablename__ = "tournament"

    id: int | None = Field(default=None, primary_key=True)
    hardware_profiles: list[str] = _json_column()
    objectives: list[dict[str, str]] = _json_column()
    constraints: list[str] = _json_column()
    opens_at: datetime | None = _timestamp(default=None)
    closes_at: datetime | None = _timestamp(default=None)
    created_at: datetime = _timestamp(default_factory=utcnow)


class TournamentPublic(TournamentBase):
    id: int
    hardware_profiles: list[str]
    objectives: list[Objective]
    constraints: list[str]
    opens_at: datetime | None
    closes_at: datetime | None
    created_at: datetime
    is_open: bool = False


class TournamentsPublic(SQLModel):
    data: list[TournamentPublic]
    count: int


# ---------------------------------------------------------------------------- participants

class ParticipantBase(SQLModel):
    name: str = Field(unique=True, index=True, max_length=NAME_MAX)


class ParticipantCreate(ParticipantBase):
    model_config = _FORBID

    @field_validator("name")
    @classmethod
    def _normalize(cls, value: str) -> str:
        return normalize_name(value)


class Participant(ParticipantBase, table=True):
    __tablename__ = "participant"

    id: int | None = Field(default=None, primary_key=True)
    # Unique: a look-alike of a taken name (see leaderboard.names.skeleton) is a conflict.
    name_skeleton: str = Field(unique=True, index=True, max_length=4 * NAME_MAX)
    key_prefix: str = Field(unique=True, index=True, max_length=16)
    key_hash: str = Field(max_length=64)
    key_expires_at: datetime | None = _timestamp(default=None)
    revoked_at: datetime | None = _timestamp(default=None)
    created_at: datetime = _timestamp(default_factory=utcnow)


class ParticipantPublic(ParticipantBase):
    id: int
    created_at: datetime
    key_expires_at: datetime | None = None

    @field_validator("created_at", "key_expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)


class ParticipantRegistered(ParticipantPublic):
    api_key: str  # shown once, never stored


# ---------------------------------------------------------------------------- registration

class RegistrationTokenCreate(SQLModel):
    """A registration token the host hands out (``registration = token``): ``uses``
    registrations (1: a personal invitation; more: a code for a whole class)."""

    model_config = _FORBID

    uses: int = Field(default=1, ge=1, le=1_000_000)
    expires_at: datetime | None = None
    note: str = Field(default="", max_length=200)

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)


class RegistrationToken(SQLModel, table=True):
    __tablename__ = "registration_token"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True, index=True, max_length=64)  # SHA-256, as API keys
    uses: int
    uses_left: int
    note: str = Field(default="", max_length=200)
    expires_at: datetime | None = _timestamp(default=None)
    created_at: datetime = _timestamp(default_factory=utcnow)


class RegistrationTokenIssued(SQLModel):
    id: int
    token: str  # shown once, never stored
    uses: int
    note: str
    expires_at: datetime | None
    created_at: datetime

    @field_validator("created_at", "expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)


# ---------------------------------------------------------------------------- submissions

class SubmissionBase(SQLModel):
    method: str | None = Field(default=None, max_length=10_000)
    code_url: str | None = Field(default=None, max_length=2_000,
                                 schema_extra={"pattern": r"^https?://[^\s]+$"})


class SubmissionCreate(SubmissionBase):
    """What ``podium submit`` posts: the TrialResult record plus how it was made."""

    model_config = _FORBID

    record: TrialResult

    @model_validator(mode="before")
    @classmethod
    def _finite(cls, data: Any) -> Any:
        _reject_non_finite(data)
        return data


class SubmissionUpdate(SubmissionBase):
    model_config = _FORBID


class Submission(SubmissionBase, table=True):
    __tablename__ = "submission"
    __table_args__ = (UniqueConstraint("participant_id", "idempotency_key",
                                       name="uq_submission_participant_idempotency_key"),
                      # quotas count a participant's submissions per tournament and day
                      Index("ix_submission_quota", "participant_id", "tournament_id",
                            "created_at"),
                      Index("ix_submission_board", "tournament_id", "status"))

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tournament_id: int = Field(foreign_key="tournament.id", index=True)
    participant_id: int | None = Field(default=None, foreign_key="participant.id", index=True)
    is_baseline: bool = False
    status: SubmissionStatus = Field(index=True, sa_type=String(16))
    reasons: list[str] = _json_column()
    feasible: bool = True
    unmet: list[str] = _json_column()
    record: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    hardware_profile: str = Field(index=True, max_length=200)
    variant: str = Field(max_length=200)
    config_digest: str = Field(max_length=200)
    metrics: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    idempotency_key: str | None = Field(default=None, max_length=200)
    request_sha256: str | None = Field(default=None, max_length=64)
    created_at: datetime = _timestamp(default_factory=utcnow, index=True)


class RefereePublic(SQLModel):
    id: int
    metrics: dict[str, float]
    ratios: dict[str, float]
    verdict: Verdict
    note: str | None
    created_at: datetime


class SubmissionPublic(SubmissionBase):
    id: uuid.UUID
    tournament: str
    participant: str | None
    is_baseline: bool
    status: SubmissionStatus
    reasons: list[str]
    feasible: bool
    unmet: list[str]
    hardware_profile: str
    variant: str
    record: dict[str, Any]
    created_at: datetime
    url: str | None = None
    reproduce: str | None = None
    export: str | None = None  # the command that writes its artifact as a deployable bundle
    referee: RefereePublic | None = None


class SubmissionsPublic(SQLModel):
    data: list[SubmissionPublic]
    count: int


# ---------------------------------------------------------------------------- referee

class RefereeCheckCreate(SQLModel):
    """The admin's re-measurement; without a verdict, one is derived from the ratios."""

    model_config = _FORBID

    metrics: dict[str, float] = Field(min_length=1)
    verdict: Verdict | None = None
    note: str | None = Field(default=None, max_length=10_000)

    @field_validator("metrics")
    @classmethod
    def _known_finite(cls, values: dict[str, float]) -> dict[str, float]:
        for name, value in values.items():
            if name not in METRICS:
                raise ValueError(f"unknown metric {name!r}")
            if not math.isfinite(value):
                raise ValueError(f"metric {name!r} is not finite")
        return values


class RefereeCheck(SQLModel, table=True):
    __tablename__ = "referee_check"

    id: int | None = Field(default=None, primary_key=True)
    submission_id: uuid.UUID = Field(foreign_key="submission.id", index=True)
    metrics: dict[str, float] = Field(default_factory=dict, sa_type=JSON)
    ratios: dict[str, float] = Field(default_factory=dict, sa_type=JSON)
    verdict: Verdict = Field(sa_type=String(16))
    note: str | None = Field(default=None, max_length=10_000)
    created_at: datetime = _timestamp(default_factory=utcnow)


# ---------------------------------------------------------------------------- leaderboard

class LeaderboardRow(BaseModel):
    rank: int | None
    pareto_rank: int | None
    submission_id: str
    participant: str | None
    is_baseline: bool
    status: SubmissionStatus
    feasible: bool
    unmet: list[str]
    hardware_profile: str
    variant: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    created_at: datetime


class LeaderboardPublic(BaseModel):
    tournament: str
    sort: str
    order: Literal["asc", "desc"]
    objectives: list[Objective]
    constraints: list[str]
    units: dict[str, str]
    data: list[LeaderboardRow]
    count: int


# ---------------------------------------------------------------------------- errors

class ErrorDetail(BaseModel):
    """``code`` is stable for programs, ``message`` one line for people, ``details`` lists
    every validation problem or rejection reason; some errors add fields (submission_id)."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    details: list[Any]


class ErrorPublic(BaseModel):
    error: ErrorDetail

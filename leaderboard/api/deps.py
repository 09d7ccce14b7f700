"""Dependencies as ``Annotated`` aliases: sessions, settings, admin and participant auth."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlmodel import Session

from leaderboard import crud
from leaderboard.cache import LeaderboardCache
from leaderboard.core.config import RegistrationMode, Settings
from leaderboard.core.db import utcnow, write_engine
from leaderboard.core.errors import ApiError
from leaderboard.core.ratelimit import RateLimits, client_address
from leaderboard.core.security import key_prefix, token_matches
from leaderboard.models import Participant

# Bounds for numbers that reach SQL, so that they answer 422 instead of failing in the driver
# (a 500): ids are INTEGER columns, 32-bit on PostgreSQL (SQLite's are 64-bit).
OFFSET_MAX = 1_000_000_000
ParticipantId = Annotated[int, Path(ge=1, le=2**31 - 1)]

bearer = HTTPBearer(auto_error=False, description="participant API key or admin token")


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


async def write_turn(request: Request) -> AsyncIterator[None]:
    """Queue this process's SQLite writers on an asyncio lock (PostgreSQL: no lock).

    SQLite has one writer at a time, and its busy handler polls with sleeps of up to
    100 ms; waiting here instead costs no thread and no sleep. Other processes still wait
    on busy_timeout. The lock is awaited on the event loop, never in a worker thread.
    """
    lock: asyncio.Lock | None = request.app.state.write_lock
    if lock is None:
        yield
        return
    async with lock:
        yield


def get_write_session(engine: Annotated[Engine, Depends(get_engine)],
                      _turn: Annotated[None, Depends(write_turn)]) -> Iterator[Session]:
    with Session(write_engine(engine), expire_on_commit=False) as session:
        yield session


async def get_cache(request: Request) -> LeaderboardCache:
    return request.app.state.cache


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
WriteSessionDep = Annotated[Session, Depends(get_write_session)]
CacheDep = Annotated[LeaderboardCache, Depends(get_cache)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
RegistrationTokenHeader = Annotated[str | None, Header(alias="Registration-Token", min_length=1,
                                                       max_length=200)]


async def require_admin(settings: SettingsDep, credentials: Credentials) -> None:
    if not settings.admin_token:
        raise ApiError(403, "admin endpoints are disabled: set PODIUM_ADMIN_TOKEN on the server")
    if credentials is None:
        raise ApiError(401, "admin token required (Authorization: Bearer <token>)",
                       headers={"WWW-Authenticate": "Bearer"})
    if not token_matches(credentials.credentials, settings.admin_token):
        raise ApiError(403, "invalid admin token")


async def get_limits(request: Request) -> RateLimits:
    return request.app.state.rate_limits


LimitsDep = Annotated[RateLimits, Depends(get_limits)]
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def limit_writes(request: Request, credentials: Credentials) -> None:
    """Every API write counts against its client address (the host's admin token: never).

    On every API route, so it reads ``app.state`` itself: each dependency FastAPI resolves
    costs a submission's request path measurable time.
    """
    if request.method not in WRITE_METHODS:
        return
    state = request.app.state
    if credentials and token_matches(credentials.credentials, state.settings.admin_token):
        return
    limits: RateLimits = state.rate_limits
    await limits.ahit(limits.write_per_address, "writes per address", client_address(request))


async def registration_gate(request: Request, limits: LimitsDep, settings: SettingsDep,
                            credentials: Credentials,
                            token: RegistrationTokenHeader = None) -> str | None:
    """Who may register in this server's mode; the registration token to spend, if any.

    The admin token registers in every mode, unlimited. Otherwise: ``closed`` refuses
    (403); ``open`` and ``token`` count the client address against ``registration_limit``
    first (so guessing tokens is as slow as registering); ``token`` needs the header (401).
    """
    if credentials and token_matches(credentials.credentials, settings.admin_token):
        return None
    if settings.registration == RegistrationMode.CLOSED:
        raise ApiError(403, "registration is closed on this server; the host registers "
                            "participants", code="registration_closed")
    await limits.ahit(limits.registration, "registrations per address",
                      client_address(request))
    if settings.registration == RegistrationMode.TOKEN:
        if not token:
            raise ApiError(401, "registration on this server needs a registration token from "
                                "the host (Registration-Token header; `podium register "
                                "--token`)", code="registration_token_required")
        return token
    return None


def optional_participant(request: Request, session: SessionDep,
                         credentials: Credentials) -> Participant | None:
    if credentials is None:
        return None
    participant = crud.authenticate(session=session, api_key=credentials.credentials)
    if participant is None:
        settings: Settings = request.app.state.settings
        if token_matches(credentials.credentials, settings.admin_token):
            return None
        raise ApiError(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
    refusal = crud.key_refusal(participant, utcnow())
    if refusal is not None:
        raise refusal
    limits: RateLimits = request.app.state.rate_limits
    limits.hit(limits.per_key, "requests per API key", participant.key_prefix)
    return participant


def current_participant(participant: Annotated[Participant | None,
                                               Depends(optional_participant)]) -> Participant:
    if participant is None:
        raise ApiError(401, "API key required (Authorization: Bearer <key>)",
                       headers={"WWW-Authenticate": "Bearer"})
    return participant


async def participant_key(request: Request, credentials: Credentials) -> str:
    """The well-formed API key of a request, counted against its limit; not yet verified.

    For submissions: the group-commit writer checks the key against the database in the
    batch's transaction (:mod:`leaderboard.batch`), with the same answers as
    :func:`optional_participant`, so the request path neither queries nor waits for a thread.
    """
    state = request.app.state
    if credentials is None or token_matches(credentials.credentials,
                                            state.settings.admin_token):
        raise ApiError(401, "API key required (Authorization: Bearer <key>)",
                       headers={"WWW-Authenticate": "Bearer"})
    prefix = key_prefix(credentials.credentials)
    if prefix is None:
        raise ApiError(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
    limits: RateLimits = state.rate_limits
    await limits.ahit(limits.per_key, "requests per API key", prefix)
    return credentials.credentials


async def is_admin(settings: SettingsDep, credentials: Credentials) -> bool:
    return credentials is not None and token_matches(credentials.credentials,
                                                     settings.admin_token)


AdminDep = Depends(require_admin)
CurrentParticipant = Annotated[Participant, Depends(current_participant)]
OptionalParticipant = Annotated[Participant | None, Depends(optional_participant)]
IsAdmin = Annotated[bool, Depends(is_admin)]
ParticipantKey = Annotated[str, Depends(participant_key)]
RegistrationGate = Annotated[str | None, Depends(registration_gate)]

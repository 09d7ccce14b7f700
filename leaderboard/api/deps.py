"""Dependencies as ``Annotated`` aliases: sessions, settings, admin and participant auth."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlmodel import Session

from leaderboard import crud
from leaderboard.cache import LeaderboardCache
from leaderboard.core.config import Settings
from leaderboard.core.db import as_utc, utcnow, write_engine
from leaderboard.core.errors import ApiError
from leaderboard.core.limits import RateLimiter
from leaderboard.core.security import token_matches
from leaderboard.models import Participant

# Bounds for numbers that reach SQL, so that they answer 422 instead of failing in the driver
# (a 500): ids are INTEGER columns, 32-bit on PostgreSQL (SQLite's are 64-bit).
OFFSET_MAX = 1_000_000_000
ParticipantId = Annotated[int, Path(ge=1, le=2**31 - 1)]

bearer = HTTPBearer(auto_error=False, description="participant API key or admin token")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
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


def get_cache(request: Request) -> LeaderboardCache:
    return request.app.state.cache


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
WriteSessionDep = Annotated[Session, Depends(get_write_session)]
CacheDep = Annotated[LeaderboardCache, Depends(get_cache)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def require_admin(settings: SettingsDep, credentials: Credentials) -> None:
    if not settings.admin_token:
        raise ApiError(403, "admin endpoints are disabled: set PODIUM_ADMIN_TOKEN on the server")
    if credentials is None:
        raise ApiError(401, "admin token required (Authorization: Bearer <token>)",
                       headers={"WWW-Authenticate": "Bearer"})
    if not token_matches(credentials.credentials, settings.admin_token):
        raise ApiError(403, "invalid admin token")


def _rate_limit(request: Request, key: str) -> None:
    limiter: RateLimiter = request.app.state.rate_limiter
    wait = limiter.acquire(key)
    if wait > 0:
        retry = str(max(1, math.ceil(wait))) if math.isfinite(wait) else "60"
        raise ApiError(429, f"rate limit exceeded; retry in {retry} s",
                       headers={"Retry-After": retry})


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
    if participant.revoked_at is not None:
        revoked = as_utc(participant.revoked_at)
        raise ApiError(401, f"this API key was revoked on {revoked:%Y-%m-%d}; ask the host "
                            "for a new one", code="key_revoked",
                       headers={"WWW-Authenticate": "Bearer"})
    expires = participant.key_expires_at
    if expires is not None and as_utc(expires) <= utcnow():
        raise ApiError(401, f"this API key expired on {as_utc(expires):%Y-%m-%d}; ask the "
                            "host for a new one", code="key_expired",
                       headers={"WWW-Authenticate": "Bearer"})
    _rate_limit(request, participant.key_prefix)
    return participant


def current_participant(participant: Annotated[Participant | None,
                                               Depends(optional_participant)]) -> Participant:
    if participant is None:
        raise ApiError(401, "API key required (Authorization: Bearer <key>)",
                       headers={"WWW-Authenticate": "Bearer"})
    return participant


def is_admin(settings: SettingsDep, credentials: Credentials) -> bool:
    return credentials is not None and token_matches(credentials.credentials,
                                                     settings.admin_token)


AdminDep = Depends(require_admin)
CurrentParticipant = Annotated[Participant, Depends(current_participant)]
OptionalParticipant = Annotated[Participant | None, Depends(optional_participant)]
IsAdmin = Annotated[bool, Depends(is_admin)]

"""One pydantic-settings object, read from the environment (``PODIUM_*``, ``DATABASE_URL``)."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from limits import parse_many
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class RegistrationMode(StrEnum):
    OPEN = "open"
    TOKEN = "token"
    CLOSED = "closed"


class Settings(BaseSettings):
    """Leaderboard settings; every field can be set from the environment.

    ``PODIUM_HOME`` (default ``~/.cache/podium``) holds the SQLite file unless
    ``DATABASE_URL`` names another database (``postgresql+psycopg://...``).
    """

    model_config = SettingsConfigDict(env_prefix="PODIUM_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".cache" / "podium")
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "PODIUM_DATABASE_URL"))
    admin_token: str | None = None
    max_body_bytes: int = 1_000_000
    # Rate limits (see leaderboard.core.ratelimit); the string ones in `limits` notation,
    # e.g. "600/minute" or "20/hour;5/minute".
    rate_limit_per_minute: float = Field(default=120.0, gt=0)  # per API key
    rate_limit_burst: int = Field(default=60, ge=1)  # per API key
    write_limit_per_address: str = "600/minute"
    registration_limit: str = "20/hour"  # per client address, without the admin token
    rate_limit_storage: str = "memory://"
    # open: anyone registers (within registration_limit); token: with a registration token
    # the host hands out; closed: only the admin token registers participants.
    registration: RegistrationMode = RegistrationMode.OPEN
    sqlite_busy_timeout_ms: int = 30_000
    api_key_ttl_days: float = 365.0  # 0: keys never expire
    leaderboard_cache_entries: int = 256
    # Submissions are stored in batches, one transaction each (group commit); false: one
    # transaction per submission under a lock (the old path, kept for the load bench).
    group_commit: bool = True
    write_batch_max: int = Field(default=256, ge=1)

    @field_validator("write_limit_per_address", "registration_limit")
    @classmethod
    def _limit(cls, value: str) -> str:
        parse_many(value)  # a ValueError names the string it could not read
        return value

    def api_key_ttl(self) -> timedelta | None:
        return timedelta(days=self.api_key_ttl_days) if self.api_key_ttl_days > 0 else None

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home.expanduser() / 'leaderboard.db'}"

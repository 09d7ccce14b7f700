"""One pydantic-settings object, read from the environment (``PODIUM_*``, ``DATABASE_URL``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    rate_limit_per_minute: float = 120.0
    rate_limit_burst: int = 60
    sqlite_busy_timeout_ms: int = 30_000
    api_key_ttl_days: float = 365.0  # 0: keys never expire
    leaderboard_cache_entries: int = 256

    def api_key_ttl(self) -> timedelta | None:
        return timedelta(days=self.api_key_ttl_days) if self.api_key_ttl_days > 0 else None

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home.expanduser() / 'leaderboard.db'}"

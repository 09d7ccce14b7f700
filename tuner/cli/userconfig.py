"""The user's Podium config: which leaderboard to talk to, and with which key.

Stored as TOML in ``$PODIUM_CONFIG`` or ``$XDG_CONFIG_HOME/podium/config.toml`` (default
``~/.config/podium/config.toml``), written with mode 600 because it holds secrets (the
participant's API key and, on a host's machine, the admin token). The environment wins over
the file (``PODIUM_URL``, ``PODIUM_API_KEY``, ``PODIUM_ADMIN_TOKEN``), so CI and tests never
need to touch it.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from tuner.errors import InputError

CONFIG_ENV = "PODIUM_CONFIG"
ENV_OVERRIDES = {"url": "PODIUM_URL", "api_key": "PODIUM_API_KEY",
                 "admin_token": "PODIUM_ADMIN_TOKEN"}
DEFAULT_URL = "http://127.0.0.1:8000"

_UNREADABLE = "the user config {path} is not valid TOML ({reason}); fix or delete it"
_NO_KEY = ("no API key: run `podium register --url URL --name NAME` first "
           "(or set PODIUM_API_KEY)")
_NO_ADMIN = ("no admin token: set PODIUM_ADMIN_TOKEN (the token the leaderboard server "
             "was started with) or admin_token in {path}")


class ConfigFileError(InputError):
    """The user config cannot be read, or lacks a credential the command needs."""


@dataclass(frozen=True)
class UserConfig:
    """Leaderboard URL, participant name and key, and (hosts only) the admin token."""

    url: str | None = None
    name: str | None = None
    api_key: str | None = None
    admin_token: str | None = None

    @property
    def leaderboard_url(self) -> str:
        return (self.url or DEFAULT_URL).rstrip("/")

    def require_key(self) -> str:
        if not self.api_key:
            raise ConfigFileError(_NO_KEY)
        return self.api_key

    def require_admin(self) -> str:
        if not self.admin_token:
            raise ConfigFileError(_NO_ADMIN.format(path=config_path()))
        return self.admin_token


def config_path() -> Path:
    """``$PODIUM_CONFIG``, else ``$XDG_CONFIG_HOME/podium/config.toml`` (XDG default)."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base).expanduser() / "podium" / "config.toml"


def read_file() -> UserConfig:
    """What the file says, without environment overrides (missing file: empty config)."""
    path = config_path()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return UserConfig()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigFileError(_UNREADABLE.format(path=path, reason=exc)) from None
    known = {f.name for f in fields(UserConfig)}
    return UserConfig(**{k: str(v) for k, v in data.items() if k in known and v is not None})


def load() -> UserConfig:
    """The effective config: the file, with ``PODIUM_URL`` / ``PODIUM_API_KEY`` /
    ``PODIUM_ADMIN_TOKEN`` taking precedence."""
    overrides = {k: os.environ[env] for k, env in ENV_OVERRIDES.items() if os.environ.get(env)}
    return replace(read_file(), **overrides)


def save(config: UserConfig) -> Path:
    """Write ``config`` (keys set to None are left out) with mode 600; return the path.

    The file is created with 600 before any secret is written to it, so the key is never
    readable by others, not even for a moment.
    """
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # JSON string escapes are valid TOML basic-string escapes.
    lines = [f"{k} = {json.dumps(v)}" for k, v in asdict(config).items() if v is not None]
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("# Podium user config: holds secrets, keep it mode 600.\n")
        handle.write("\n".join(lines) + "\n")
    return path


def update(**changes: str | None) -> Path:
    """Merge ``changes`` into the file (not the environment) and save it."""
    return save(replace(read_file(), **changes))

"""Run the packaged Alembic migrations from Python: no alembic.ini at the repo root.

``podium leaderboard migrate`` calls :func:`upgrade`; the app calls :func:`check_current`
at start-up and refuses to serve a database that is not at the head revision; ``podium
demo`` migrates its database with :func:`migrate_url` before it starts the server.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from leaderboard.core.db import create_db_engine
from tuner.errors import PodiumError

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATE_COMMAND = "podium leaderboard migrate"


class NotMigrated(PodiumError):
    """The database schema is missing or behind the code."""

    exit_code = 2


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        config.set_main_option("sqlalchemy.url",
                               engine.url.render_as_string(hide_password=False)
                               .replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("the leaderboard package ships no migrations")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to ``revision``."""
    _run(engine, command.upgrade, revision)


def migrate_url(url: str) -> None:
    """Create or upgrade the schema of the database at ``url`` to the head revision."""
    engine = create_db_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def downgrade(engine: Engine, revision: str) -> None:
    _run(engine, command.downgrade, revision)


def _run(engine: Engine, action, revision: str) -> None:  # type: ignore[no-untyped-def]
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        action(config, revision)


def check_current(engine: Engine) -> None:
    """Raise :class:`NotMigrated`, naming the command to run, unless the schema is at head."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        where = make_url(str(engine.url)).render_as_string(hide_password=True)
        state = "has no leaderboard schema" if current is None else (
            f"is at revision {current}, the code needs {head}")
        raise NotMigrated(f"the database {where} {state}: run `{MIGRATE_COMMAND}` "
                          "(with the same PODIUM_HOME / DATABASE_URL) first")

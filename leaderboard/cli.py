"""``podium leaderboard serve | migrate | backup | restore | registration-token``: a Typer
sub-app.

Mounted by the main CLI. Errors are one line on stderr and exit code 2; no traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leaderboard.core.config import Settings
from tuner.errors import one_line

app = typer.Typer(help="Run the leaderboard server and manage its database.",
                  no_args_is_help=True, pretty_exceptions_enable=False)

DatabaseUrl = Annotated[str | None, typer.Option(
    "--database-url", help="SQLAlchemy URL; default: DATABASE_URL or a SQLite file in "
                           "PODIUM_HOME (~/.cache/podium/leaderboard.db)")]


def _settings(database_url: str | None) -> Settings:
    settings = Settings()
    if database_url:
        settings.database_url = database_url
    return settings


def _fail(error: BaseException) -> typer.Exit:
    typer.echo(f"error: {one_line(error)}", err=True)
    return typer.Exit(2)


@app.command()
def migrate(database_url: DatabaseUrl = None,
            revision: Annotated[str, typer.Option(help="target revision")] = "head") -> None:
    """Create or upgrade the leaderboard schema."""
    from leaderboard import migrate as migrations
    from leaderboard.core.db import create_db_engine

    settings = _settings(database_url)
    try:
        engine = create_db_engine(settings.resolved_database_url())
        before = migrations.current_revision(engine)
        migrations.upgrade(engine, revision)
        after = migrations.current_revision(engine)
        engine.dispose()
    except Exception as error:  # one line for any failure: bad URL, unreachable server
        raise _fail(error) from None
    typer.echo(f"database at revision {after} (was {before or 'empty'})")


@app.command()
def serve(host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="TCP port")] = 8000,
          database_url: DatabaseUrl = None) -> None:
    """Serve the API (/api/v1, docs at /docs) and the website (/) with uvicorn."""
    import uvicorn

    from leaderboard.core.db import create_db_engine
    from leaderboard.main import create_app
    from leaderboard.migrate import check_current

    settings = _settings(database_url)
    try:
        engine = create_db_engine(settings.resolved_database_url())
        check_current(engine)
        engine.dispose()
    except Exception as error:  # NotMigrated, a bad URL, an unreachable server
        raise _fail(error) from None
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info",
                access_log=False)


BackupFile = Annotated[Path, typer.Argument(help="the backup file (SQLite format)")]


@app.command()
def backup(file: BackupFile, database_url: DatabaseUrl = None,
           force: Annotated[bool, typer.Option("--force", help="overwrite FILE")] = False
           ) -> None:
    """Copy the database into FILE while the server runs (a consistent, verified snapshot)."""
    from leaderboard import backup as backups

    settings = _settings(database_url)
    try:
        snapshot = backups.backup(settings.resolved_database_url(), file, force=force)
    except Exception as error:  # one line: bad URL, unwritable FILE, failed verification
        raise _fail(error) from None
    typer.echo(f"backup written to {file}: {snapshot.summary()}, integrity ok")


@app.command()
def restore(file: BackupFile, database_url: DatabaseUrl = None,
            force: Annotated[bool, typer.Option(
                "--force", help="replace the contents of a database that holds rows, or "
                                "that a running server holds open")] = False
            ) -> None:
    """Load FILE into the database (stop the server first: a database in use is refused);
    verifies the row counts."""
    from leaderboard import backup as backups

    settings = _settings(database_url)
    try:
        snapshot = backups.restore(file, settings.resolved_database_url(), force=force)
    except Exception as error:  # one line: not a backup, target not empty, bad URL
        raise _fail(error) from None
    typer.echo(f"restored {file}: {snapshot.summary()}, verified")


@app.command("registration-token")
def registration_token(
        uses: Annotated[int, typer.Option(min=1, max=1_000_000, help=(
            "how many participants may register with it (1: a personal invitation)"))] = 1,
        days: Annotated[float | None, typer.Option(
            min=0.0, help="valid for this many days (default: until used up)")] = None,
        note: Annotated[str, typer.Option(help="what it is for (for the host)")] = "",
        database_url: DatabaseUrl = None) -> None:
    """Issue a registration token, for a server with PODIUM_REGISTRATION=token; participants
    pass it to `podium register --token`. Printed once; only its digest is stored."""
    from datetime import timedelta

    from sqlmodel import Session

    from leaderboard import crud
    from leaderboard.core.db import create_db_engine, utcnow, write_engine
    from leaderboard.migrate import check_current
    from leaderboard.models import RegistrationTokenCreate

    settings = _settings(database_url)
    expires = utcnow() + timedelta(days=days) if days is not None else None
    try:
        token_in = RegistrationTokenCreate(uses=uses, note=note, expires_at=expires)
        engine = create_db_engine(settings.resolved_database_url())
        try:
            check_current(engine)
            with Session(write_engine(engine)) as session:
                _, token = crud.create_registration_token(session=session, token_in=token_in)
        finally:
            engine.dispose()
    except Exception as error:  # one line: bad URL, unmigrated database, bad note
        raise _fail(error) from None
    until = f", until {expires:%Y-%m-%d %H:%M} UTC" if expires else ""
    typer.echo(f"registration token for {uses} participant(s){until}:")
    typer.echo(token)

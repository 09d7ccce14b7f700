"""``podium leaderboard serve | migrate``: a Typer sub-app, mounted by the main CLI.

Errors are one line on stderr and exit code 2; no traceback.
"""

from __future__ import annotations

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

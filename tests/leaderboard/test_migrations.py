"""Migrations up and down, models in sync with them, and refusing an un-migrated database."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import inspect
from sqlmodel import SQLModel
from typer.testing import CliRunner

from leaderboard import cli
from leaderboard.core.config import Settings
from leaderboard.core.db import create_db_engine
from leaderboard.main import create_app
from leaderboard.migrate import (
    NotMigrated,
    check_current,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)

TABLES = {"tournament", "participant", "submission", "referee_check"}


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    engine = create_db_engine(database_url)
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert set(inspect(engine).get_table_names()) >= TABLES
    downgrade(engine, "base")
    assert current_revision(engine) is None
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade(engine)
    check_current(engine)
    engine.dispose()


def test_models_match_migrations(migrated: str) -> None:
    engine = create_db_engine(migrated)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    engine.dispose()
    assert diff == []


def test_sqlite_is_wal(migrated: str) -> None:
    if not migrated.startswith("sqlite"):
        pytest.skip("SQLite only")
    engine = create_db_engine(migrated)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    engine.dispose()


def test_app_refuses_unmigrated_database(settings: Settings) -> None:
    with (pytest.raises(NotMigrated, match="run `podium leaderboard migrate`"),
          TestClient(create_app(settings))):
        pass


def test_cli_migrate_then_serve_check(settings: Settings, database_url: str) -> None:
    runner = CliRunner()
    refused = runner.invoke(cli.app, ["serve", "--database-url", database_url, "--port", "1"])
    assert refused.exit_code == 2
    assert "podium leaderboard migrate" in refused.output and "Traceback" not in refused.output
    done = runner.invoke(cli.app, ["migrate", "--database-url", database_url])
    assert done.exit_code == 0, done.output
    assert f"database at revision {head_revision()} (was empty)" in done.output
    again = runner.invoke(cli.app, ["migrate", "--database-url", database_url])
    assert f"(was {head_revision()})" in again.output


def test_cli_migrate_uses_podium_home(podium_home) -> None:
    result = CliRunner().invoke(cli.app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert (podium_home / "leaderboard.db").exists()


def test_cli_error_is_one_line_exit_2() -> None:
    result = CliRunner().invoke(cli.app, ["migrate", "--database-url", "nosuchdb://x"])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1


def test_0002_backfills_name_skeletons_keeping_old_lookalikes(database_url: str) -> None:
    from sqlalchemy import text

    engine = create_db_engine(database_url)
    upgrade(engine, "0001")
    with engine.begin() as connection:
        for i, name in enumerate(["alice", "\u0430lice", "Bob"], start=1):
            connection.execute(text(
                "INSERT INTO participant (id, name, key_prefix, key_hash, created_at) "
                "VALUES (:id, :name, :prefix, 'h', '2026-01-01 00:00:00')"),
                {"id": i, "name": name, "prefix": f"p{i:011d}"})
    upgrade(engine)
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT name, name_skeleton, key_expires_at FROM participant ORDER BY id")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("alice", "alice", None), ("\u0430lice", "alice#2", None),
                                        ("Bob", "bob", None)]

"""``podium leaderboard backup`` / ``restore``: an online copy taken while a real server takes
concurrent submissions, restored into a fresh database with every row equal."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import SQLModel
from typer.testing import CliRunner

from leaderboard import cli
from leaderboard.backup import tables
from leaderboard.core.db import as_utc, create_db_engine
from tests.leaderboard.conftest import (
    ADMIN,
    auth,
    make_record,
    submission_body,
    tournament_body,
)

runner = CliRunner()


def all_rows(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, ordered by primary key, timestamps in UTC."""
    engine = create_db_engine(url)
    rows: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            query = select(table).order_by(*table.primary_key.columns)
            rows[table.name] = [
                {k: as_utc(v) if isinstance(v, datetime) else v for k, v in row.items()}
                for row in connection.execute(query).mappings()]
    engine.dispose()
    return rows


def seed(url: str, participants: int) -> tuple[str, list[str]]:
    """A tournament with a generous quota and some registered participants."""
    with httpx.Client(base_url=url, timeout=30) as client:
        body = tournament_body(quota_per_day=10_000, quota_total=10_000)
        assert client.post("/api/v1/tournaments", json=body, headers=ADMIN).status_code == 201
        keys = []
        for i in range(participants):
            response = client.post("/api/v1/participants", json={"name": f"writer-{i}"})
            assert response.status_code == 201, response.text
            keys.append(response.json()["api_key"])
    return f"/api/v1/tournaments/{body['slug']}/submissions", keys


def writer(url: str, path: str, key: str, stop: threading.Event, accepted: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        n = 0
        while not stop.is_set():
            n += 1
            record = make_record(p50=1.0, p90=1.0 + n / 1000, p99=2.0)
            response = client.post(path, json=submission_body(record), headers=auth(key))
            if response.status_code == 201:
                accepted.append(response.json()["id"])


@pytest.mark.slow
def test_backup_during_concurrent_writes_restores_every_row(live_server: str,
                                                            database_url: str,
                                                            tmp_path: Path) -> None:
    path, keys = seed(live_server, 4)
    stop = threading.Event()
    accepted: list[str] = []
    threads = [threading.Thread(target=writer, args=(live_server, path, key, stop, accepted))
               for key in keys]
    for thread in threads:
        thread.start()
    try:
        while len(accepted) < 20:
            threading.Event().wait(0.05)
        before = list(accepted)
        backup_file = tmp_path / "board.backup"
        result = runner.invoke(cli.app, ["backup", str(backup_file),
                                         "--database-url", database_url])
        during = len(accepted)
        while len(accepted) < during + 10:  # writes go on after the copy
            threading.Event().wait(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert result.exit_code == 0, result.output
    assert "integrity ok" in result.output

    copied = all_rows(f"sqlite:///{backup_file}")
    ids = {row["id"].hex for row in copied["submission"]}
    assert {i.replace("-", "") for i in before} <= ids  # every 2xx before the copy is in it
    assert len(copied["submission"]) < len(accepted)  # and the writers really overlapped

    fresh = f"sqlite:///{tmp_path / 'fresh' / 'restored.db'}"
    restored = runner.invoke(cli.app, ["restore", str(backup_file), "--database-url", fresh])
    assert restored.exit_code == 0, restored.output
    assert "verified" in restored.output
    assert all_rows(fresh) == copied
    with sqlite3.connect(tmp_path / "fresh" / "restored.db") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    # The server still holds the live database open: a restore over it is refused.
    refused = runner.invoke(cli.app, ["restore", str(backup_file), "--database-url",
                                      database_url])
    assert refused.exit_code == 2
    assert "in use" in refused.output and "--force" in refused.output
    assert "Traceback" not in refused.output
    assert len(all_rows(database_url)["submission"]) == len(accepted)


def test_backup_and_restore_refusals(migrated: str, tmp_path: Path) -> None:
    backup_file = tmp_path / "b.db"
    first = runner.invoke(cli.app, ["backup", str(backup_file), "--database-url", migrated])
    assert first.exit_code == 0, first.output
    again = runner.invoke(cli.app, ["backup", str(backup_file), "--database-url", migrated])
    assert again.exit_code == 2 and "--force" in again.output
    forced = runner.invoke(cli.app, ["backup", str(backup_file), "--database-url", migrated,
                                     "--force"])
    assert forced.exit_code == 0, forced.output

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"SQLite format 3\x00" + b"\x13" * 5000)
    target = f"sqlite:///{tmp_path / 'target.db'}"
    for bad in (garbage, tmp_path / "missing.db"):
        result = runner.invoke(cli.app, ["restore", str(bad), "--database-url", target])
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: ") and "Traceback" not in result.output

    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(backup_file.read_bytes()[:4096])
    result = runner.invoke(cli.app, ["restore", str(truncated), "--database-url", target])
    assert result.exit_code == 2 and "Traceback" not in result.output

    ok = runner.invoke(cli.app, ["restore", str(backup_file), "--database-url", target])
    assert ok.exit_code == 0, ok.output
    assert set(all_rows(target)) == set(tables())


def test_restore_force_replaces_contents(client, tournament, alice: str, migrated: str,
                                         tmp_path: Path) -> None:
    slug = tournament["slug"]
    first = client.post(f"/api/v1/tournaments/{slug}/submissions", json=submission_body(),
                        headers=auth(alice))
    assert first.status_code == 201
    backup_file = tmp_path / "one.db"
    assert runner.invoke(cli.app, ["backup", str(backup_file), "--database-url",
                                   migrated]).exit_code == 0
    saved = all_rows(f"sqlite:///{backup_file}")
    second = client.post(f"/api/v1/tournaments/{slug}/submissions",
                         json=submission_body(make_record(p90=1.1)), headers=auth(alice))
    assert second.status_code == 201
    result = runner.invoke(cli.app, ["restore", str(backup_file), "--database-url", migrated,
                                     "--force"])
    assert result.exit_code == 0, result.output
    assert all_rows(migrated) == saved and len(saved["submission"]) == 1


def test_restore_refuses_a_database_a_running_server_holds(live_server: str, migrated: str,
                                                           tmp_path: Path) -> None:
    seed(live_server, 1)
    backup_file = tmp_path / "board.backup"
    assert runner.invoke(cli.app, ["backup", str(backup_file), "--database-url",
                                   migrated]).exit_code == 0
    refused = runner.invoke(cli.app, ["restore", str(backup_file), "--database-url", migrated])
    assert refused.exit_code == 2, refused.output
    assert refused.output.startswith("error: ") and "in use" in refused.output
    assert "stop the server" in refused.output and "Traceback" not in refused.output
    forced = runner.invoke(cli.app, ["restore", str(backup_file), "--database-url", migrated,
                                     "--force"])
    assert forced.exit_code == 0, forced.output
    with httpx.Client(base_url=live_server, timeout=10) as client:  # it still serves
        assert client.get("/api/v1/tournaments/digits-latency").status_code == 200

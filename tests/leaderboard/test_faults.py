"""A locked, full or read-only database: a clear 503/507 JSON error, no traceback, and no
row written; the service recovers once the fault is gone. SQLite only (the faults are
injected through SQLite's own locks and limits)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import make_url

from leaderboard.core.config import Settings
from leaderboard.main import create_app
from tests.leaderboard.conftest import ADMIN, auth, register, submission_body, tournament_body

T = "/api/v1/tournaments/digits-latency"


@pytest.fixture
def sqlite_file(migrated: str) -> Path:
    if not migrated.startswith("sqlite"):
        pytest.skip("faults injected through SQLite")
    return Path(make_url(migrated).database or "")


def counts(path: Path) -> tuple[int, int]:
    with closing(sqlite3.connect(path)) as connection:
        return (connection.execute("SELECT count(*) FROM submission").fetchone()[0],
                connection.execute("SELECT count(*) FROM participant").fetchone()[0])


def assert_fault(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert code == "database_busy" or "nothing was written" in error["message"]
    assert response.headers["Retry-After"] == "1"
    assert "Traceback" not in response.text and "sqlite" not in response.text.lower()


@pytest.fixture
def ready(settings: Settings, sqlite_file: Path) -> Iterator[tuple[TestClient, str]]:
    settings.sqlite_busy_timeout_ms = 200
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.post("/api/v1/tournaments", json=tournament_body(),
                           headers=ADMIN).status_code == 201
        yield client, register(client, "alice")


def test_database_locked_is_503_and_writes_nothing(ready, sqlite_file: Path) -> None:
    client, key = ready
    before = counts(sqlite_file)
    with closing(sqlite3.connect(sqlite_file, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")  # held far longer than the 200 ms busy timeout
        locked = client.post(f"{T}/submissions", json=submission_body(), headers=auth(key))
        assert_fault(locked, 503, "database_busy")
        assert_fault(client.post("/api/v1/participants", json={"name": "bob"}), 503,
                     "database_busy")
        assert client.get(f"{T}/leaderboard").status_code == 200  # WAL: reads go on
        holder.execute("ROLLBACK")
    assert counts(sqlite_file) == before
    again = client.post(f"{T}/submissions", json=submission_body(), headers=auth(key))
    assert again.status_code == 201, again.text


def test_database_full_is_507_and_writes_nothing(ready, settings: Settings,
                                                 sqlite_file: Path) -> None:
    client, key = ready
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with closing(sqlite3.connect(sqlite_file)) as connection:
        pages = connection.execute("PRAGMA page_count").fetchone()[0]

    def cap(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

    event.listen(engine, "connect", cap)
    engine.dispose()  # every new connection gets the cap: the file cannot grow
    before = counts(sqlite_file)
    big = submission_body(method="m" * 10_000)  # needs overflow pages
    assert_fault(client.post(f"{T}/submissions", json=big, headers=auth(key)), 507,
                 "insufficient_storage")
    assert counts(sqlite_file) == before
    event.remove(engine, "connect", cap)
    engine.dispose()
    assert client.post(f"{T}/submissions", json=big, headers=auth(key)).status_code == 201
    assert counts(sqlite_file)[0] == before[0] + 1


def test_read_only_database_is_503_and_writes_nothing(settings: Settings,
                                                      sqlite_file: Path) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.post("/api/v1/tournaments", json=tournament_body(),
                           headers=ADMIN).status_code == 201
        key = register(client, "alice")
    before = counts(sqlite_file)
    # The file opened read-only, as on a read-only mount (root ignores chmod, so the tests
    # use SQLite's own read-only mode, which fails writes the same way: SQLITE_READONLY).
    settings.database_url = f"sqlite:///file:{sqlite_file}?mode=ro&uri=true"
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.get(f"{T}/leaderboard").status_code == 200
        assert_fault(client.post(f"{T}/submissions", json=submission_body(),
                                 headers=auth(key)), 503, "database_read_only")
        assert_fault(client.post("/api/v1/participants", json={"name": "bob"}), 503,
                     "database_read_only")
    assert counts(sqlite_file) == before

"""The real server killed with SIGKILL during a burst of concurrent submissions, restarted:
every acknowledged submission is there, retries with the same Idempotency-Key add nothing,
and the database passes its integrity check."""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from leaderboard.core.db import create_db_engine
from tests.leaderboard.conftest import (
    ADMIN_TOKEN,
    HIGH_LIMITS_ENV,
    auth,
    free_port,
    make_record,
    submission_body,
)
from tests.leaderboard.test_backup import seed
from tuner.cli.demo import LeaderboardProcess

KILLS = 3
WRITERS = 6
DEADLINE_S = 90


@dataclass
class Burst:
    """What the clients saw: acknowledged key → submission id, and every failure."""

    acked: dict[str, str] = field(default_factory=dict)
    transport_errors: int = 0
    server_errors: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def body_for(idem: str) -> dict:
    n = sum(map(ord, idem))  # a distinct, deterministic body per key
    return submission_body(make_record(p50=1.0, p90=1.0 + n / 10_000, p99=2.0))


def client_loop(url: str, path: str, key: str, name: str, stop: threading.Event,
                burst: Burst) -> None:
    """Submit with fresh keys until stopped; retry a key until it is acknowledged."""
    deadline = time.monotonic() + DEADLINE_S
    n, idem = 0, None
    with httpx.Client(base_url=url, timeout=10) as client:
        while time.monotonic() < deadline:
            if idem is None:
                if stop.is_set():
                    return
                n += 1
                idem = f"{name}-{n}"
            try:
                response = client.post(path, json=body_for(idem),
                                       headers=auth(key) | {"Idempotency-Key": idem})
            except httpx.TransportError:
                with burst.lock:
                    burst.transport_errors += 1
                time.sleep(0.05)
                continue  # the server is down: retry the same key and body
            if response.status_code == 201:
                with burst.lock:
                    burst.acked[idem] = response.json()["id"]
                idem = None
            elif response.status_code >= 500:
                burst.server_errors.append(response.text)
                time.sleep(0.05)
            else:
                burst.unexpected.append(f"{response.status_code} {response.text}")
                idem = None


def wait_for(condition, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.slow
def test_sigkill_during_submission_burst_loses_and_duplicates_nothing(
        settings, migrated: str, tmp_path: Path) -> None:
    server = LeaderboardProcess(home=settings.home, port=free_port(), admin_token=ADMIN_TOKEN,
                                database_url=migrated,
                                env=HIGH_LIMITS_ENV)
    server.start()
    try:
        path, keys = seed(server.url, WRITERS)
        stop, burst = threading.Event(), Burst()
        threads = [threading.Thread(target=client_loop,
                                    args=(server.url, path, key, f"w{i}", stop, burst))
                   for i, key in enumerate(keys)]
        for thread in threads:
            thread.start()
        for _ in range(KILLS):
            seen = len(burst.acked)
            wait_for(lambda seen=seen: len(burst.acked) >= seen + 15)
            assert server.process is not None
            server.process.send_signal(signal.SIGKILL)
            server.process.wait()
            time.sleep(0.2)  # clients meet a dead port, then retry
            server.start()
        seen = len(burst.acked)
        wait_for(lambda: len(burst.acked) >= seen + 10)
        stop.set()
        for thread in threads:
            thread.join()

        assert not burst.server_errors and not burst.unexpected
        assert burst.transport_errors > 0  # the kills really cut requests off

        # Retries of every acknowledged key replay the first answer.
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i, key in enumerate(keys):
                for idem, sid in burst.acked.items():
                    if not idem.startswith(f"w{i}-"):
                        continue
                    again = client.post(path, json=body_for(idem),
                                        headers=auth(key) | {"Idempotency-Key": idem})
                    assert again.status_code == 201 and again.json()["id"] == sid
                    assert again.headers["Idempotent-Replayed"] == "true"
    finally:
        server.stop()

    engine = create_db_engine(migrated)
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT id, idempotency_key FROM submission")).all()
        if connection.dialect.name == "sqlite":
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    engine.dispose()
    stored = {key: str(sid).replace("-", "") for sid, key in rows}
    assert len(rows) == len(stored)  # no key stored twice
    acked = {key: sid.replace("-", "") for key, sid in burst.acked.items()}
    assert {k: stored.get(k) for k in acked} == acked  # nothing acknowledged is lost
    # A request cut off before its answer may have committed; its retry got that row back,
    # so every stored key is an acknowledged one: no orphans, no duplicates.
    assert set(stored) == set(acked)
    print(f"SIGKILL x{KILLS}: {len(acked)} acknowledged, {burst.transport_errors} requests "
          f"cut off and retried, 0 lost, 0 duplicated")

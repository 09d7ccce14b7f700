"""Fixtures: a real, migrated database per test (SQLite file, or PostgreSQL when
``PODIUM_TEST_DATABASE_URL`` is set), an app, a client, and valid TrialResult records."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from leaderboard.core.config import Settings
from leaderboard.core.db import create_db_engine, is_sqlite
from leaderboard.main import create_app
from leaderboard.migrate import upgrade
from tuner.trial.results import TrialResult

ADMIN_TOKEN = "test-admin-token"
# Limits no functional test reaches (test_abuse.py lowers them to test them).
HIGH_LIMITS: dict[str, Any] = {"rate_limit_per_minute": 6000, "rate_limit_burst": 1000,
                               "write_limit_per_address": "100000/minute",
                               "registration_limit": "100000/minute"}
HIGH_LIMITS_ENV = {"PODIUM_RATE_LIMIT_PER_MINUTE": "600000", "PODIUM_RATE_LIMIT_BURST": "100000",
                   "PODIUM_WRITE_LIMIT_PER_ADDRESS": "1000000/minute",
                   "PODIUM_REGISTRATION_LIMIT": "1000000/minute"}
WORKLOAD_SHA = hashlib.sha256(b"digits-mlp").hexdigest()
REFERENCE_QUALITY = 0.97


def reset_database(url: str) -> None:
    """Leave an empty database behind (PostgreSQL: drop and recreate the public schema)."""
    engine = create_db_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture
def podium_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "podium-home"
    monkeypatch.setenv("PODIUM_HOME", str(home))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("PODIUM_DATABASE_URL", raising=False)
    monkeypatch.delenv("PODIUM_ADMIN_TOKEN", raising=False)
    return home


@pytest.fixture
def database_url(podium_home: Path) -> str:
    url = os.environ.get("PODIUM_TEST_DATABASE_URL")
    if url and not is_sqlite(url):
        reset_database(url)
        return url
    return f"sqlite:///{podium_home / 'leaderboard.db'}"


@pytest.fixture
def settings(podium_home: Path, database_url: str) -> Settings:
    return Settings(home=podium_home, database_url=database_url, admin_token=ADMIN_TOKEN,
                    **HIGH_LIMITS)


@pytest.fixture
def migrated(settings: Settings) -> str:
    engine = create_db_engine(settings.resolved_database_url())
    upgrade(engine)
    engine.dispose()
    return settings.resolved_database_url()


@pytest.fixture
def client(settings: Settings, migrated: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_record(*, profile: str = "local", variant: str = "fp32", p50: float = 1.0,
                p90: float = 1.2, p99: float = 1.5, quality: float = 0.96,
                metrics: dict[str, Any] | None = None, config: dict[str, Any] | None = None,
                **overrides: Any) -> TrialResult:
    """A plausible, valid TrialResult; keyword overrides replace top-level fields."""
    values: dict[str, Any] = {
        "latency_p50_ms": p50, "latency_p90_ms": p90, "latency_p99_ms": p99,
        "latency_mean_ms": (p50 + p90) / 2, "throughput_per_s": 1000.0 / p50,
        "quality": quality, "quality_ratio": quality / REFERENCE_QUALITY,
        "model_size_bytes": 120_000, "peak_rss_bytes": 80_000_000, "build_s": 2.5,
        "power_w": 35.0, "energy_mj_per_inference": 35.0 * p50,
        "cost_per_million_usd": 0.02, "power_source": "estimated_tdp",
        "price_source": "profile", "stability": "stable", "cv": 0.012}
    values |= metrics or {}
    config = config or {"backend": "ort", "precision": "fp32", "intra_op_threads": 1}
    data: dict[str, Any] = {
        "podium_version": "0.1.0", "trial_id": "t-1", "state": "complete",
        "workload": {"name": "digits-mlp", "sha256": WORKLOAD_SHA, "variant": variant,
                     "variant_sha256": hashlib.sha256(variant.encode()).hexdigest(),
                     "metric": "accuracy", "reference_quality": REFERENCE_QUALITY},
        "config": config,
        "config_digest": hashlib.sha256(repr(sorted(config.items())).encode()).hexdigest(),
        "hardware": {"profile": profile,
                     "fingerprint": {"cpu": "Test CPU @ 2.0GHz", "cores": 2, "isa": "avx2"},
                     "node": "node-1", "cpus": [0]},
        "packages": {"onnxruntime": "1.31.1", "onnx": "1.19.0", "numpy": "2.3.0"},
        "metrics": values, "seed": 0,
        "started_at": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
    }
    data |= overrides
    return TrialResult.model_validate(data)


def submission_body(record: TrialResult | None = None, **extra: Any) -> dict[str, Any]:
    record = record or make_record()
    return {"record": record.model_dump(mode="json"), **extra}


def tournament_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "slug": "digits-latency", "title": "Digits: fastest accurate MLP",
        "description": "Lowest p90 latency at 99% of fp32 quality.",
        "workload_name": "digits-mlp", "workload_sha256": WORKLOAD_SHA,
        "hardware_profiles": ["local", "c7i-large"],
        "objectives": [{"metric": "latency_p90_ms"}, {"metric": "quality_ratio"}],
        "constraints": ["quality_ratio >= 0.95"], "division": "open",
        "quota_per_day": 50, "quota_total": 100,
        "reference_quality": REFERENCE_QUALITY, "reference_variant": "fp32"}
    return body | overrides


@pytest.fixture
def tournament(client: TestClient) -> dict[str, Any]:
    response = client.post("/api/v1/tournaments", json=tournament_body(), headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


def register(client: TestClient, name: str) -> str:
    response = client.post("/api/v1/participants", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["api_key"]


@pytest.fixture
def alice(client: TestClient) -> str:
    return register(client, "alice")


@pytest.fixture
def bob(client: TestClient) -> str:
    return register(client, "bob")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(settings: Settings, database_url: str, **env: str) -> Iterator[str]:
    """A real uvicorn subprocess on a free loopback port, limits high unless ``env`` sets
    them (``PODIUM_REGISTRATION="token"``, …); yields its base URL."""
    from tuner.cli.demo import LeaderboardProcess

    server = LeaderboardProcess(home=settings.home, port=free_port(), admin_token=ADMIN_TOKEN,
                                database_url=database_url, env=HIGH_LIMITS_ENV | env)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def live_server(settings: Settings, migrated: str) -> Iterator[str]:
    with serving(settings, migrated) as url:
        yield url

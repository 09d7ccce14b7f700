"""A public tournament's abuse cases: registration bursts, registration modes, write bursts.

Limits are set small here, so that each burst crosses them in a few requests; every test
then counts the rows, so a 429 is shown to have written nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlmodel import Session, func, select

from leaderboard.core.config import Settings
from leaderboard.core.db import create_db_engine
from leaderboard.main import create_app
from leaderboard.models import Participant, Submission
from tests.leaderboard.conftest import (
    ADMIN,
    auth,
    make_record,
    register,
    serving,
    submission_body,
    tournament_body,
)
from tests.leaderboard.test_api import assert_error

P = "/api/v1/participants"
T = "/api/v1/tournaments/digits-latency"


def count(url: str, table: Any) -> int:
    engine = create_db_engine(url)
    with Session(engine) as session:
        n = session.exec(select(func.count()).select_from(table)).one()
    engine.dispose()
    return n


def assert_limited(response: httpx.Response) -> None:
    error = assert_error(response, 429, "rate_limited")
    assert "rate limit exceeded" in error["message"]
    assert int(response.headers["Retry-After"]) >= 1


@pytest.fixture
def app_with(settings: Settings, migrated: str):  # type: ignore[no-untyped-def]
    """``app_with(**overrides)``: a TestClient on an app with these settings changed."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        client = TestClient(create_app(settings.model_copy(update=overrides)))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_registration_burst_gets_429_after_the_limit_and_creates_exactly_that_many(
        app_with, migrated: str) -> None:
    client = app_with(registration_limit="7/minute")
    codes = [client.post(P, json={"name": f"bot-{i}"}).status_code for i in range(200)]
    assert codes == [201] * 7 + [429] * 193
    assert_limited(client.post(P, json={"name": "one-more"}))
    assert count(migrated, Participant) == 7
    # The host is not limited: it registers whom it likes.
    assert client.post(P, json={"name": "invited"}, headers=ADMIN).status_code == 201


def test_token_mode_needs_a_token_and_spends_its_uses(app_with, migrated: str) -> None:
    client = app_with(registration="token")
    missing = client.post(P, json={"name": "eve"})
    assert_error(missing, 401, "registration_token_required")
    assert "podium register --token" in missing.json()["error"]["message"]
    assert_error(client.post(P, json={"name": "eve"}, headers={"Registration-Token": "reg_x"}),
                 403, "registration_token_invalid")

    assert_error(client.post("/api/v1/registration-tokens", json={"uses": 2}), 401,
                 "unauthorized")
    issued = client.post("/api/v1/registration-tokens", json={"uses": 2, "note": "class A"},
                         headers=ADMIN)
    assert issued.status_code == 201, issued.text
    token = {"Registration-Token": issued.json()["token"]}
    assert issued.json()["uses"] == 2 and "token_hash" not in issued.json()

    assert client.post(P, json={"name": "ann"}, headers=token).status_code == 201
    # A name clash is a 409 and gives the use back.
    assert_error(client.post(P, json={"name": "ANN"}, headers=token), 409, "conflict")
    assert client.post(P, json={"name": "ben"}, headers=token).status_code == 201
    assert_error(client.post(P, json={"name": "cat"}, headers=token), 403,
                 "registration_token_invalid")
    assert client.post(P, json={"name": "dan"}, headers=ADMIN).status_code == 201
    assert count(migrated, Participant) == 3


def test_expired_registration_token_is_refused(app_with) -> None:
    client = app_with(registration="token")
    issued = client.post("/api/v1/registration-tokens", headers=ADMIN,
                         json={"uses": 5, "expires_at": "2020-01-01T00:00:00Z"})
    assert issued.status_code == 201, issued.text
    assert_error(client.post(P, json={"name": "late"},
                             headers={"Registration-Token": issued.json()["token"]}),
                 403, "registration_token_invalid")


def test_closed_mode_registers_only_through_the_host(app_with, migrated: str) -> None:
    client = app_with(registration="closed")
    assert_error(client.post(P, json={"name": "eve"}), 403, "registration_closed")
    assert_error(client.post(P, json={"name": "eve"}, headers={"Registration-Token": "x"}),
                 403, "registration_closed")
    assert client.post(P, json={"name": "eve"}, headers=ADMIN).status_code == 201
    assert count(migrated, Participant) == 1


def test_write_burst_per_address_stops_at_the_limit(app_with, migrated: str) -> None:
    client = app_with(write_limit_per_address="12/minute")
    assert client.post("/api/v1/tournaments", json=tournament_body(),
                       headers=ADMIN).status_code == 201  # the host's writes are not counted
    keys = [register(client, name) for name in ("ann", "ben")]  # 2 writes
    codes = [client.post(f"{T}/submissions", json=submission_body(make_record(p90=1 + i / 100)),
                         headers=auth(keys[i % 2])).status_code for i in range(30)]
    assert codes == [201] * 10 + [429] * 20
    assert_limited(client.patch(f"/api/v1/submissions/{'0' * 32}", json={"method": "x"},
                                headers=auth(keys[0])))
    assert count(migrated, Submission) == 10
    assert client.get(f"{T}/leaderboard").status_code == 200  # reads are not writes


def test_write_burst_per_key_stops_at_the_limit(app_with, migrated: str) -> None:
    client = app_with(rate_limit_burst=4, rate_limit_per_minute=1)
    assert client.post("/api/v1/tournaments", json=tournament_body(),
                       headers=ADMIN).status_code == 201
    key, other = register(client, "ann"), register(client, "ben")
    codes = [client.post(f"{T}/submissions", json=submission_body(make_record(p90=1 + i / 100)),
                         headers=auth(key)).status_code for i in range(10)]
    assert codes == [201] * 4 + [429] * 6
    assert_limited(client.get(f"{P}/me", headers=auth(key)))
    assert count(migrated, Submission) == 4
    assert client.post(f"{T}/submissions", json=submission_body(),
                       headers=auth(other)).status_code == 201


def test_limits_are_checked_when_settings_load() -> None:
    with pytest.raises(ValidationError, match="couldn't parse rate limit string"):
        Settings(registration_limit="lots")
    with pytest.raises(ValidationError):
        Settings(registration="invite-only")


@pytest.fixture
def limited_server(settings: Settings, migrated: str) -> Iterator[str]:
    """A real uvicorn server limiting registrations per client address to 3 a minute."""
    with serving(settings, migrated, PODIUM_REGISTRATION_LIMIT="3/minute") as url:
        yield url


def test_registration_limit_per_address_over_real_http(limited_server: str,
                                                       migrated: str) -> None:
    with httpx.Client(base_url=limited_server, timeout=10) as client:
        answers = [client.post(P, json={"name": f"bot-{i}"}) for i in range(20)]
    assert [a.status_code for a in answers] == [201] * 3 + [429] * 17
    assert_limited(answers[-1])
    assert answers[-1].headers["content-type"] == "application/json"
    assert count(migrated, Participant) == 3

"""Group commit: a batch answers each submission as if it had been written alone; concurrent
requests share transactions; the old path (a transaction per submission) answers the same."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from leaderboard import batch, crud
from leaderboard.batch import Pending, Stored, create_submissions
from leaderboard.core.config import Settings
from leaderboard.core.db import create_db_engine, utcnow, write_engine
from leaderboard.core.errors import ApiError
from leaderboard.main import create_app
from leaderboard.models import (
    ParticipantCreate,
    RefereeCheckCreate,
    Submission,
    SubmissionCreate,
    TournamentCreate,
)
from tests.leaderboard.conftest import (
    ADMIN,
    auth,
    make_record,
    register,
    submission_body,
    tournament_body,
)

SLUG = "digits-latency"


def body(p90: float = 1.2) -> SubmissionCreate:
    return SubmissionCreate.model_validate(submission_body(make_record(p90=p90)))


@pytest.fixture
def board(migrated: str) -> Iterator[dict[str, Any]]:
    """A tournament with a quota of 2, and the keys of alice, bob (revoked) and carol."""
    engine = create_db_engine(migrated)
    with Session(engine, expire_on_commit=False) as session:
        tournament = crud.create_tournament(session=session, tournament_in=TournamentCreate(
            **tournament_body(quota_total=2)))
        keys = {}
        for name in ("alice", "bob", "carol"):
            participant, keys[name] = crud.create_participant(
                session=session, participant_in=ParticipantCreate(name=name))
            if name == "bob":
                crud.revoke_key(session=session, participant_id=participant.id or 0)
        stored, _ = crud.create_submission(
            session=session, tournament=tournament,
            participant=crud.authenticate(session=session, api_key=keys["alice"]),
            submission_in=body(1.0), idempotency_key="k0")
        crud.create_referee_check(session=session, submission=stored,
                                  check_in=RefereeCheckCreate(metrics={"latency_p90_ms": 1.0}))
    yield {"engine": engine, "keys": keys, "stored": stored}
    engine.dispose()


def write(engine: Any, items: list[Pending]) -> list[Any]:
    with Session(write_engine(engine), expire_on_commit=False) as session:
        return create_submissions(session=session, items=items, now=utcnow())


def rows(engine: Any) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(Submission)).one()


def test_a_batch_answers_every_item_as_if_alone(board: dict[str, Any]) -> None:
    keys, engine = board["keys"], board["engine"]
    wrong = keys["alice"][:-4] + "xxxx"
    outcomes = write(engine, [
        Pending(SLUG, keys["alice"], body(1.1), "k1"),  # new
        Pending(SLUG, keys["alice"], body(1.1), "k1"),  # the same again: a replay of it
        Pending(SLUG, keys["alice"], body(1.3), "k1"),  # the key with another body: 409
        Pending("no-such", keys["alice"], body(), "k2"),  # 404
        Pending(SLUG, wrong, body(), "k3"),  # 401
        Pending(SLUG, keys["bob"], body(), "k4"),  # revoked: 401
        Pending(SLUG, keys["carol"], body(1.4), None),  # carol's quota is 2:
        Pending(SLUG, keys["carol"], body(1.5), None),
        Pending(SLUG, keys["carol"], body(1.6), None),  # ... the third is rejected, stored
        Pending(SLUG, keys["alice"], body(1.0), "k0"),  # stored before: a replay, refereed
        Pending(SLUG, None, body(1.9), "base", is_baseline=True),  # the host's baseline
    ])
    new, replay, conflict, missing, invalid, revoked, c1, c2, c3, old, base = outcomes
    assert isinstance(new, Stored) and new.created and new.participant_name == "alice"
    assert isinstance(replay, Stored) and not replay.created
    assert replay.row["id"] == new.row["id"]
    assert isinstance(conflict, ApiError) and conflict.code == "idempotency_conflict"
    assert isinstance(missing, ApiError) and missing.status == 404
    assert isinstance(invalid, ApiError) and invalid.status == 401
    assert isinstance(revoked, ApiError) and revoked.code == "key_revoked"
    assert [o.row["status"] for o in (c1, c2, c3)] == ["accepted", "accepted", "rejected"]
    assert any("quota" in reason for reason in c3.row["reasons"])
    assert isinstance(old, Stored) and not old.created
    assert old.row["id"] == board["stored"].id and old.referee is not None
    assert isinstance(base, Stored) and base.created and base.row["is_baseline"]
    assert rows(engine) == 1 + 1 + 3 + 1  # k0, k1, carol's three, the baseline


def test_a_key_race_lost_in_the_insert_is_answered_row_by_row(
        board: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process stored "k0" after the batch looked (PostgreSQL can race so): the
    batch's INSERT clashes, the rows go in one by one, and only that item becomes a replay."""
    keys, engine = board["keys"], board["engine"]
    looked_up = batch._stored_keys
    calls = []

    def blind_first(session: Session, wanted: dict) -> dict:
        calls.append(wanted)
        return {} if len(calls) == 1 else looked_up(session, wanted)

    monkeypatch.setattr(batch, "_stored_keys", blind_first)
    fresh, raced = write(engine, [Pending(SLUG, keys["carol"], body(1.4), "c1"),
                                  Pending(SLUG, keys["alice"], body(1.0), "k0")])
    assert len(calls) == 2
    assert isinstance(fresh, Stored) and fresh.created
    assert isinstance(raced, Stored) and not raced.created
    assert raced.row["id"] == board["stored"].id
    assert rows(engine) == 2


def test_concurrent_requests_share_transactions(client: TestClient, tournament,
                                                settings: Settings) -> None:
    keys = [register(client, f"w{i}") for i in range(8)]
    app = client.app

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return list(await asyncio.gather(*(
                http.post(f"/api/v1/tournaments/{SLUG}/submissions",
                          json=submission_body(make_record(p90=1 + i / 1000)),
                          headers=auth(keys[i % 8]) | {"Idempotency-Key": f"b{i}"})
                for i in range(48))))

    writer = app.state.writer  # type: ignore[attr-defined]
    answers = asyncio.run(burst())
    assert [a.status_code for a in answers] == [201] * 48
    assert len({a.json()["id"] for a in answers}) == 48
    assert writer.items >= 48 and writer.batches < writer.items
    listed = client.get(f"/api/v1/tournaments/{SLUG}/leaderboard", params={"limit": 500})
    assert listed.json()["count"] == 48


@pytest.mark.parametrize("group_commit", [True, False], ids=["group-commit", "old-path"])
def test_both_write_paths_answer_alike(settings: Settings, migrated: str,
                                       group_commit: bool) -> None:
    settings.group_commit = group_commit
    with TestClient(create_app(settings)) as client:
        assert client.post("/api/v1/tournaments", json=tournament_body(),
                           headers=ADMIN).status_code == 201
        key = register(client, "alice")
        path = f"/api/v1/tournaments/{SLUG}/submissions"
        headers = auth(key) | {"Idempotency-Key": str(uuid.uuid4())}
        first = client.post(path, json=submission_body(), headers=headers)
        again = client.post(path, json=submission_body(), headers=headers)
        other = client.post(path, json=submission_body(make_record(p90=1.3)), headers=headers)
        missing = client.post("/api/v1/tournaments/nope/submissions", json=submission_body(),
                              headers=auth(key))
        revoked = client.delete("/api/v1/participants/me/key", headers=auth(key))
        late = client.post(path, json=submission_body(), headers=auth(key))
    assert first.status_code == 201 and first.json()["participant"] == "alice"
    assert first.headers["Location"] == first.json()["url"]
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"
    assert missing.status_code == 404
    assert revoked.status_code == 204
    assert late.status_code == 401 and late.json()["error"]["code"] == "key_revoked"

"""Hostile and bad input against the API: each is refused with a 4xx JSON error (never a
500), or stored as a rejected submission with its reason, and never leaves a half-written
row. README's Security section lists every case tried here."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.leaderboard.conftest import (
    ADMIN,
    ADMIN_TOKEN,
    auth,
    make_record,
    register,
    submission_body,
    tournament_body,
)

T = "/api/v1/tournaments/digits-latency"
JSON = {"Content-Type": "application/json"}


def rows(client: TestClient, table: str) -> int:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as connection:
        return connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def post_raw(client: TestClient, key: str, raw: str | bytes, path: str = f"{T}/submissions"):
    return client.post(path, content=raw, headers=auth(key) | JSON)


def error_of(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return error


def rejected_for(response, check: str) -> list[str]:
    error = error_of(response, 422, "submission_rejected")
    assert any(reason.startswith(f"{check}:") for reason in error["details"]), error
    return error["details"]


# ---------------------------------------------------------------------------- metrics

@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_metrics_refused(client: TestClient, tournament, alice: str,
                                    literal: str) -> None:
    raw = json.dumps(submission_body()).replace('"latency_p90_ms": 1.2',
                                               f'"latency_p90_ms": {literal}')
    assert literal in raw
    error = error_of(post_raw(client, alice, raw), 422, "validation_error")
    assert "non-finite" in error["message"]
    assert rows(client, "submission") == 0


@pytest.mark.parametrize("metrics", [
    {"latency_p50_ms": -1.0},  # negative
    {"throughput_per_s": -5.0, "energy_mj_per_inference": -7.0},
    {"latency_p90_ms": 1e12, "latency_p99_ms": 2e12},  # absurd: 31 years per call
    {"quality": 7.0},
    {"model_size_bytes": 10**30},
    {"cv": -0.5},
])
def test_negative_and_absurd_metrics_rejected(client: TestClient, tournament, alice: str,
                                              metrics: dict[str, Any]) -> None:
    body = submission_body(make_record(metrics=metrics))
    rejected_for(client.post(f"{T}/submissions", json=body, headers=auth(alice)),
                 "metrics_sane")
    assert client.get(f"{T}/leaderboard").json()["count"] == 0


def test_p99_below_p50_rejected(client: TestClient, tournament, alice: str) -> None:
    body = submission_body(make_record(p50=2.0, p90=2.5, p99=1.0))
    reasons = rejected_for(client.post(f"{T}/submissions", json=body, headers=auth(alice)),
                           "percentiles_ordered")
    assert any("latency_p90_ms = 2.5 is above latency_p99_ms = 1" in r for r in reasons)


# ---------------------------------------------------------------------------- body shape

def test_ten_megabyte_body_refused(client: TestClient, tournament, alice: str) -> None:
    body = submission_body(method="x" * 10_000_000)
    raw = json.dumps(body).encode()
    assert len(raw) > 10_000_000
    error_of(post_raw(client, alice, raw), 413, "payload_too_large")

    def chunks():  # no Content-Length: the limit holds while streaming too
        for start in range(0, len(raw), 65_536):
            yield raw[start:start + 65_536]

    streamed = client.post(f"{T}/submissions", content=chunks(), headers=auth(alice) | JSON)
    error_of(streamed, 413, "payload_too_large")
    assert rows(client, "submission") == 0


def test_deeply_nested_json_refused(client: TestClient, tournament, alice: str) -> None:
    body = submission_body()
    raw = json.dumps(body).replace('"config": {', '"config": {"x": ' + "[" * 5000 + "]" * 5000
                                   + ", ", 1)
    response = post_raw(client, alice, raw)
    assert 400 <= response.status_code < 500 and "Traceback" not in response.text


@pytest.mark.parametrize("where", ["top", "record", "metrics", "workload", "hardware"])
def test_unknown_fields_refused(client: TestClient, tournament, alice: str,
                                where: str) -> None:
    body = submission_body()
    target = {"top": body, "record": body["record"], "metrics": body["record"]["metrics"],
              "workload": body["record"]["workload"],
              "hardware": body["record"]["hardware"]}[where]
    target["is_admin"] = True
    error_of(client.post(f"{T}/submissions", json=body, headers=auth(alice)), 422,
             "validation_error")
    assert rows(client, "submission") == 0


def test_unknown_fields_elsewhere_refused(client: TestClient, tournament, alice: str) -> None:
    error_of(client.post("/api/v1/participants", json={"name": "eve", "admin": True}), 422,
             "validation_error")
    error_of(client.post("/api/v1/tournaments", json=tournament_body(slug="t2", owner="eve"),
                         headers=ADMIN), 422, "validation_error")
    sid = client.post(f"{T}/submissions", json=submission_body(),
                      headers=auth(alice)).json()["id"]
    for change in ({"status": "verified"}, {"metrics": {"latency_p90_ms": 0.1}},
                   {"record": submission_body()["record"]}, {"participant_id": 99}):
        error_of(client.patch(f"/api/v1/submissions/{sid}", json=change, headers=auth(alice)),
                 422, "validation_error")
    for raw in (b"", b"not json", b"[]", b'"a string"', b"null", b"\xff\xfe\x00", b"{" * 100):
        response = post_raw(client, alice, raw)
        assert response.status_code in (400, 422) and "Traceback" not in response.text
    assert rows(client, "submission") == 1


# ---------------------------------------------------------------------------- names

INJECTIONS = ["Robert'); DROP TABLE submission;--", "x' OR '1'='1",
              '"; DELETE FROM participant; --', "1; UPDATE participant SET name='pwned'"]


def test_sql_injection_is_inert(client: TestClient, tournament, alice: str) -> None:
    client.post(f"{T}/submissions", json=submission_body(), headers=auth(alice))
    for name in INJECTIONS:
        response = client.post("/api/v1/participants", json={"name": name})
        assert response.status_code == 201 and response.json()["name"] == name
    assert rows(client, "submission") == 1
    assert rows(client, "participant") == 1 + len(INJECTIONS)
    for injected in INJECTIONS:
        assert client.get(f"{T}/leaderboard", params={"hardware": injected}).json()[
            "count"] == 0
        error_of(client.get(f"{T}/leaderboard", params={"sort": injected}), 422,
                 "validation_error")
        response = client.get(f"/api/v1/tournaments/{injected}/leaderboard")
        assert response.status_code == 404
        response = client.post(f"{T}/submissions", json=submission_body(make_record(p90=1.3)),
                               headers=auth(alice) | {"Idempotency-Key": injected})
        assert response.status_code == 201, response.text
    error_of(client.get("/api/v1/submissions/1 OR 1=1"), 422, "validation_error")
    assert client.get(f"{T}/leaderboard").json()["count"] == 1 + len(INJECTIONS)


@pytest.mark.parametrize("name", ["a\u0000b", "line\nbreak", "tab\there", "\u202eecila",
                                  "zero\u200bwidth", "esc\x1b[31mred", "bell\x07",
                                  "\ufeffbom", "\u2066isolate", "   ", ""])
def test_control_and_invisible_characters_in_names_refused(client: TestClient,
                                                           name: str) -> None:
    error_of(client.post("/api/v1/participants", json={"name": name}), 422, "validation_error")
    assert rows(client, "participant") == 0


@pytest.mark.parametrize(("name", "status"), [
    ("\u0430lice", 422),  # Cyrillic а + Latin lice: mixed scripts
    ("\u03b1lice", 422),  # Greek α + Latin
    ("ALICE", 409),  # case
    ("\uff41\uff4c\uff49\uff43\uff45", 409),  # full-width ａｌｉｃｅ
    ("al\u0456ce", 422),  # Cyrillic і inside Latin
    ("alice ", 409),  # trimmed
    ("a\u0301lice", 201),  # NFC: álice is another name
])
def test_lookalike_names(client: TestClient, alice: str, name: str, status: int) -> None:
    response = client.post("/api/v1/participants", json={"name": name})
    assert response.status_code == status, response.text


def test_all_cyrillic_lookalike_collides(client: TestClient) -> None:
    register(client, "ape")
    response = client.post("/api/v1/participants", json={"name": "\u0430\u0440\u0435"})  # аре
    error_of(response, 409, "conflict")
    assert "looks like a taken name" in response.json()["error"]["message"]
    register(client, "\u0430\u043b\u0438\u0441\u0430")  # алиса: a real Cyrillic name is fine
    register(client, "bobl")
    error_of(client.post("/api/v1/participants", json={"name": "bob1"}), 409, "conflict")


# ---------------------------------------------------------------------------- keys

def test_expired_key_refused(client: TestClient, tournament, alice: str) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    past = datetime.now(UTC) - timedelta(seconds=1)
    with engine.begin() as connection:
        connection.execute(text("UPDATE participant SET key_expires_at = :t WHERE name = "
                                "'alice'"), {"t": past})
    error = error_of(client.post(f"{T}/submissions", json=submission_body(),
                                 headers=auth(alice)), 401, "key_expired")
    assert "expired" in error["message"]
    assert rows(client, "submission") == 0


def test_revoked_and_rotated_keys_refused(client: TestClient, tournament, alice: str,
                                          bob: str) -> None:
    me = client.get("/api/v1/participants/me", headers=auth(alice)).json()
    rotated = client.post("/api/v1/participants/me/key", headers=auth(alice))
    assert rotated.status_code == 200
    new_key = rotated.json()["api_key"]
    error_of(client.get("/api/v1/participants/me", headers=auth(alice)), 401, "unauthorized")
    assert client.get("/api/v1/participants/me", headers=auth(new_key)).json()["id"] == me["id"]

    assert client.delete("/api/v1/participants/me/key",
                         headers=auth(new_key)).status_code == 204
    error_of(client.post(f"{T}/submissions", json=submission_body(), headers=auth(new_key)),
             401, "key_revoked")
    error_of(client.post("/api/v1/participants/me/key", headers=auth(new_key)), 401,
             "key_revoked")

    bob_id = client.get("/api/v1/participants/me", headers=auth(bob)).json()["id"]
    error_of(client.delete(f"/api/v1/participants/{bob_id}/key", headers=auth(bob)), 403,
             "forbidden")  # a participant is not the admin
    assert client.delete(f"/api/v1/participants/{bob_id}/key", headers=ADMIN).status_code == 204
    error_of(client.get("/api/v1/participants/me", headers=auth(bob)), 401, "key_revoked")
    reissued = client.post(f"/api/v1/participants/{me['id']}/key", headers=ADMIN)
    assert reissued.status_code == 200
    fresh = reissued.json()["api_key"]
    assert client.post(f"{T}/submissions", json=submission_body(),
                       headers=auth(fresh)).status_code == 201
    error_of(client.post("/api/v1/participants/999/key", headers=ADMIN), 404, "not_found")


def test_forged_and_misused_keys_refused(client: TestClient, tournament, alice: str,
                                         bob: str) -> None:
    alice_prefix = alice.split("_")[1]
    bob_secret = bob.split("_", 2)[2]
    forged = [f"pod_{alice_prefix}_{bob_secret}", alice[:-1], alice + "x", "pod_", "pod__x",
              "Bearer " + alice, alice.upper(), "' OR 1=1 --", "\u0430" * 40]
    for key in forged:
        header = f"Bearer {key}".encode()  # raw UTF-8 bytes, as a hostile client sends them
        response = client.post(f"{T}/submissions", json=submission_body(),
                               headers={"Authorization": header})
        error_of(response, 401, "unauthorized")
    # the admin token is not a participant key
    error_of(client.post(f"{T}/submissions", json=submission_body(),
                         headers=auth(ADMIN_TOKEN)), 401, "unauthorized")
    assert rows(client, "submission") == 0


def test_other_participants_submissions(client: TestClient, tournament, alice: str,
                                        bob: str) -> None:
    accepted = client.post(f"{T}/submissions", json=submission_body(), headers=auth(alice))
    rejected = client.post(f"{T}/submissions", headers=auth(alice),
                           json=submission_body(make_record(profile="gpu-x")))
    sid, hidden = accepted.json()["id"], rejected.json()["error"]["submission_id"]
    error_of(client.patch(f"/api/v1/submissions/{sid}", json={"method": "bob's now"},
                          headers=auth(bob)), 403, "forbidden")
    error_of(client.patch(f"/api/v1/submissions/{hidden}", json={"method": "x"},
                          headers=auth(bob)), 404, "not_found")
    error_of(client.get(f"/api/v1/submissions/{hidden}", headers=auth(bob)), 404, "not_found")
    assert client.get("/api/v1/participants/me/submissions",
                      headers=auth(bob)).json()["count"] == 0
    # Bob's key with Alice's Idempotency-Key neither replays nor clashes with her submission.
    again = client.post(f"{T}/submissions", json=submission_body(),
                        headers=auth(alice) | {"Idempotency-Key": "k"})
    theirs = client.post(f"{T}/submissions", json=submission_body(),
                         headers=auth(bob) | {"Idempotency-Key": "k"})
    assert theirs.status_code == 201 and theirs.json()["id"] != again.json()["id"]
    assert theirs.json()["participant"] == "bob"
    assert client.get(f"/api/v1/submissions/{sid}").json()["method"] is None


# ---------------------------------------------------------------------------- tournaments

def test_closed_not_yet_open_and_foreign_tournaments(client: TestClient, alice: str) -> None:
    now = datetime.now(UTC)
    for slug, extra in [("closed", {"status": "closed"}),
                        ("ended", {"closes_at": (now - timedelta(days=1)).isoformat()}),
                        ("later", {"opens_at": (now + timedelta(days=1)).isoformat()}),
                        ("draft", {"status": "draft"})]:
        body = tournament_body(slug=slug, **extra)
        assert client.post("/api/v1/tournaments", json=body, headers=ADMIN).status_code == 201
        rejected_for(client.post(f"/api/v1/tournaments/{slug}/submissions",
                                 json=submission_body(), headers=auth(alice)),
                     "tournament_open")
    foreign = tournament_body(slug="other-model", workload_name="resnet",
                              workload_sha256="ab" * 32, hardware_profiles=["gpu-x"])
    client.post("/api/v1/tournaments", json=foreign, headers=ADMIN)
    reasons = rejected_for(client.post("/api/v1/tournaments/other-model/submissions",
                                       json=submission_body(), headers=auth(alice)),
                           "workload")
    assert any(r.startswith("hardware_allowed:") for r in reasons)
    error_of(client.post("/api/v1/tournaments/nowhere/submissions", json=submission_body(),
                         headers=auth(alice)), 404, "not_found")
    assert all(client.get(f"/api/v1/tournaments/{s}/leaderboard").json()["count"] == 0
               for s in ("closed", "ended", "later", "draft", "other-model"))


# ---------------------------------------------------------------------------- claims

def test_estimated_power_claimed_as_measured_rejected(client: TestClient, alice: str) -> None:
    body = tournament_body(constraints=["quality_ratio >= 0.95", "power_w <= 100"])
    client.post("/api/v1/tournaments", json=body, headers=ADMIN)
    relabelled = make_record(metrics={"power_source": "rapl"})
    reasons = rejected_for(client.post(f"{T}/submissions", json=submission_body(relabelled),
                                       headers=auth(alice)), "power_claim")
    assert not any(r.startswith("power_source:") for r in reasons)  # rapl would satisfy it
    honest = client.post(f"{T}/submissions", json=submission_body(), headers=auth(alice))
    rejected_for(honest, "power_source")  # an honest estimate cannot meet a power constraint


def test_stale_price_rejected(client: TestClient, alice: str) -> None:
    body = tournament_body(objectives=[{"metric": "latency_p90_ms"},
                                       {"metric": "cost_per_million_usd"}])
    client.post("/api/v1/tournaments", json=body, headers=ADMIN)
    stale = make_record(metrics={"price_source": "AWS EC2 on-demand (2023-01-01)"})
    reasons = rejected_for(client.post(f"{T}/submissions", json=submission_body(stale),
                                       headers=auth(alice)), "price_fresh")
    assert any("stale" in r for r in reasons)
    today = datetime.now(UTC).date().isoformat()
    fresh = make_record(metrics={"price_source": f"AWS EC2 on-demand ({today})"})
    assert client.post(f"{T}/submissions", json=submission_body(fresh),
                       headers=auth(alice)).status_code == 201


def test_tampered_record_caught(client: TestClient, tournament, alice: str) -> None:
    honest = make_record(p50=2.0, p90=2.4, p99=3.0)
    # Edited alone: throughput doubled, energy left as measured.
    clumsy = honest.model_copy(deep=True)
    clumsy.metrics.throughput_per_s = honest.metrics.throughput_per_s * 2
    rejected_for(client.post(f"{T}/submissions", json=submission_body(clumsy),
                             headers=auth(alice)), "derived_consistent")
    # Edited consistently: every latency halved, throughput doubled, energy halved. The
    # checker cannot tell; the referee's re-measurement can.
    careful = make_record(p50=1.0, p90=1.2, p99=1.5)
    sid = client.post(f"{T}/submissions", json=submission_body(careful),
                      headers=auth(alice)).json()["id"]
    verdict = client.post(f"/api/v1/submissions/{sid}/referee", headers=ADMIN,
                          json={"metrics": {"latency_p90_ms": honest.metrics.latency_p90_ms,
                                            "throughput_per_s":
                                                honest.metrics.throughput_per_s}})
    assert verdict.status_code == 201 and verdict.json()["verdict"] == "disputed"
    assert client.get(f"/api/v1/submissions/{sid}").json()["status"] == "disputed"
    board = client.get(f"{T}/leaderboard", params={"verified_only": True}).json()
    assert board["count"] == 0
    nan = json.dumps({"metrics": {"latency_p90_ms": float("nan")}})
    error_of(client.post(f"/api/v1/submissions/{sid}/referee", content=nan,
                         headers=ADMIN | JSON), 422, "validation_error")


def test_query_parameters_out_of_range(client: TestClient, tournament) -> None:
    for params in ({"limit": -1}, {"limit": 10**6}, {"offset": -5}, {"limit": "x"},
                   {"order": "sideways"}, {"verified_only": "maybe"},
                   {"hardware": "h" * 500}):
        error_of(client.get(f"{T}/leaderboard", params=params), 422, "validation_error")
    assert client.get(f"{T}/leaderboard", params={"offset": 10**9}).json()["data"] == []
    error_of(client.get("/api/v1/tournaments", params={"offset": 10**30}), 422,
             "validation_error")  # found by schemathesis: a 500 from the SQLite driver
    error_of(client.post(f"/api/v1/participants/{10**30}/key", headers=ADMIN), 422,
             "validation_error")
    error_of(client.get("/api/v1/submissions/not-a-uuid"), 422, "validation_error")
    error_of(client.get("/api/v1/submissions/00000000-0000-0000-0000-000000000000"), 404,
             "not_found")

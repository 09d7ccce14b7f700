"""The /api/v1 endpoints against a real, migrated database (SQLite file or PostgreSQL)."""

from __future__ import annotations

import json
import unicodedata

from fastapi.testclient import TestClient

from leaderboard.core.config import Settings
from leaderboard.main import create_app
from tests.leaderboard.conftest import (
    ADMIN,
    auth,
    make_record,
    register,
    submission_body,
    tournament_body,
)

T = "/api/v1/tournaments/digits-latency"


def submit(client: TestClient, key: str, body: dict | None = None, *, idem: str | None = None):
    headers = auth(key) | ({"Idempotency-Key": idem} if idem else {})
    return client.post(f"{T}/submissions", json=body or submission_body(), headers=headers)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and isinstance(error["details"], list)
    return error


def test_health(client: TestClient) -> None:
    assert client.get("/api/v1/health").json() == {"status": "ok", "database": "ok"}


def test_openapi_docs(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert "/api/v1/tournaments/{slug}/leaderboard" in paths


def test_tournament_admin_create_list_show(client: TestClient) -> None:
    assert_error(client.post("/api/v1/tournaments", json=tournament_body()), 401, "unauthorized")
    assert_error(client.post("/api/v1/tournaments", json=tournament_body(),
                             headers=auth("wrong")), 403, "forbidden")
    created = client.post("/api/v1/tournaments", json=tournament_body(), headers=ADMIN)
    assert created.status_code == 201
    assert created.json()["objectives"][1] == {"metric": "quality_ratio",
                                                "direction": "maximize"}
    assert_error(client.post("/api/v1/tournaments", json=tournament_body(), headers=ADMIN),
                 409, "conflict")
    listed = client.get("/api/v1/tournaments").json()
    assert listed["count"] == 1 and listed["data"][0]["slug"] == "digits-latency"
    shown = client.get(T).json()
    assert shown["is_open"] is True and shown["constraints"] == ["quality_ratio >= 0.95"]
    assert_error(client.get("/api/v1/tournaments/nope"), 404, "not_found")


def test_tournament_validation(client: TestClient) -> None:
    bad = [tournament_body(constraints=["quality_ratio >= nan"]),
           tournament_body(objectives=[{"metric": "speed"}]),
           tournament_body(slug="Bad Slug"), tournament_body(workload_sha256="xyz"),
           tournament_body(surprise=1)]
    for body in bad:
        assert_error(client.post("/api/v1/tournaments", json=body, headers=ADMIN), 422,
                     "validation_error")


def test_admin_disabled_without_token(settings: Settings, migrated: str) -> None:
    settings.admin_token = None
    with TestClient(create_app(settings)) as client:
        error = assert_error(client.post("/api/v1/tournaments", json=tournament_body(),
                                         headers=ADMIN), 403, "forbidden")
    assert "PODIUM_ADMIN_TOKEN" in error["message"]


def test_register_participant_nfc_unique_key_shown_once(client: TestClient) -> None:
    decomposed = unicodedata.normalize("NFD", "  José ")
    response = client.post("/api/v1/participants", json={"name": decomposed})
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "José" and body["api_key"].startswith("pod_")
    composed = client.post("/api/v1/participants", json={"name": "José"})
    assert_error(composed, 409, "conflict")
    me = client.get("/api/v1/participants/me", headers=auth(body["api_key"])).json()
    assert me == {"name": "José", "id": body["id"], "created_at": me["created_at"],
                  "key_expires_at": body["key_expires_at"]}
    assert "api_key" not in me
    assert_error(client.post("/api/v1/participants", json={"name": "x" * 65}), 422,
                 "validation_error")
    assert_error(client.post("/api/v1/participants", json={"name": "a\u0000b"}), 422,
                 "validation_error")
    assert_error(client.get("/api/v1/participants/me", headers=auth("pod_123456789012_no")),
                 401, "unauthorized")


def test_submit_accepted_and_show(client: TestClient, tournament, alice: str) -> None:
    response = submit(client, alice, submission_body(method="fp32 baseline, 1 thread",
                                                     code_url="https://example.org/x"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "accepted" and body["participant"] == "alice"
    assert body["reproduce"] == f"podium reproduce {body['url']}"
    assert body["export"].startswith(f"podium export --submission {body['url']} ")
    shown = client.get(f"/api/v1/submissions/{body['id']}").json()
    assert shown["record"] == body["record"] and shown["method"] == "fp32 baseline, 1 thread"


def test_submit_requires_key(client: TestClient, tournament) -> None:
    assert_error(client.post(f"{T}/submissions", json=submission_body()), 401, "unauthorized")


def test_idempotency_replay_and_conflict(client: TestClient, tournament, alice: str) -> None:
    first = submit(client, alice, idem="key-1")
    again = submit(client, alice, idem="key-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = submission_body(make_record(p90=1.3))
    assert_error(submit(client, alice, other, idem="key-1"), 409, "idempotency_conflict")
    assert client.get(f"{T}/leaderboard").json()["count"] == 1


def test_rejected_stored_with_reasons_shown_only_to_owner(client: TestClient, tournament,
                                                          alice: str, bob: str) -> None:
    record = make_record(profile="gpu-x", p50=5.0, metrics={"stability": "unstable"})
    response = submit(client, alice, submission_body(record), idem="r1")
    error = assert_error(response, 422, "submission_rejected")
    assert len(error["details"]) == 3  # every reason at once
    assert submit(client, alice, submission_body(record), idem="r1").json() == response.json()
    sid = error["submission_id"]
    owner_view = client.get(f"/api/v1/submissions/{sid}", headers=auth(alice)).json()
    assert owner_view["status"] == "rejected" and owner_view["reasons"] == error["details"]
    assert client.get(f"/api/v1/submissions/{sid}", headers=auth(bob)).status_code == 404
    assert client.get(f"/api/v1/submissions/{sid}").status_code == 404
    assert client.get(f"/api/v1/submissions/{sid}", headers=ADMIN).status_code == 200
    mine = client.get("/api/v1/participants/me/submissions", headers=auth(alice)).json()
    assert mine["count"] == 1 and mine["data"][0]["reasons"] == error["details"]
    assert client.get(f"{T}/leaderboard").json()["count"] == 0


def test_non_finite_and_unknown_fields_are_422(client: TestClient, tournament,
                                               alice: str) -> None:
    body = submission_body()
    body["record"]["metrics"]["latency_p90_ms"] = float("inf")
    raw = json.dumps(body)  # Python writes Infinity, which json.loads would accept
    response = client.post(f"{T}/submissions", content=raw,
                           headers=auth(alice) | {"Content-Type": "application/json"})
    error = assert_error(response, 422, "validation_error")
    assert "non-finite" in error["message"]
    assert_error(submit(client, alice, submission_body(surprise=True)), 422, "validation_error")
    extra = submission_body()
    extra["record"]["metrics"]["speed"] = 3
    assert_error(submit(client, alice, extra), 422, "validation_error")


def test_participant_cannot_change_anothers_submission(client: TestClient, tournament,
                                                       alice: str, bob: str) -> None:
    sid = submit(client, alice).json()["id"]
    assert_error(client.patch(f"/api/v1/submissions/{sid}", json={"method": "mine now"},
                              headers=auth(bob)), 403, "forbidden")
    changed = client.patch(f"/api/v1/submissions/{sid}", json={"method": "int8 + pinning"},
                           headers=auth(alice))
    assert changed.status_code == 200 and changed.json()["method"] == "int8 + pinning"
    assert_error(client.patch(f"/api/v1/submissions/{sid}", json={"status": "verified"},
                              headers=auth(alice)), 422, "validation_error")


def test_quota_per_day(client: TestClient, alice: str) -> None:
    client.post("/api/v1/tournaments", json=tournament_body(quota_per_day=2), headers=ADMIN)
    assert submit(client, alice).status_code == 201
    assert submit(client, alice).status_code == 201
    error = assert_error(submit(client, alice), 422, "submission_rejected")
    assert error["details"] == ["quota: daily quota of 2 submissions used up (resets at "
                                "00:00 UTC)"]


def test_leaderboard_sort_filter_baseline_pareto(client: TestClient, tournament, alice: str,
                                                 bob: str) -> None:
    submit(client, alice, submission_body(make_record(p90=1.2, quality=0.95)))
    submit(client, bob, submission_body(make_record(p90=1.1, p99=1.4, quality=0.93,
                                                    profile="c7i-large")))
    submit(client, bob, submission_body(make_record(p90=0.5, p99=0.6, quality=0.80)))  # unmet
    baseline = client.post(f"{T}/baseline", headers=ADMIN,
                           json=submission_body(make_record(p90=2.0, p99=2.5, quality=0.97)))
    assert baseline.status_code == 201 and baseline.json()["is_baseline"] is True
    assert_error(client.post(f"{T}/baseline", headers=auth(alice), json=submission_body()),
                 403, "forbidden")

    board = client.get(f"{T}/leaderboard").json()
    assert board["sort"] == "latency_p90_ms" and board["order"] == "asc" and board["count"] == 3
    rows = board["data"]
    assert [r["participant"] for r in rows] == ["bob", "alice", None]
    assert [r["rank"] for r in rows] == [1, 2, None] and rows[2]["is_baseline"]
    assert [r["pareto_rank"] for r in rows] == [1, 1, 1]
    assert board["units"]["latency_p90_ms"] == "ms per call"

    by_quality = client.get(f"{T}/leaderboard", params={"sort": "quality_ratio"}).json()
    assert by_quality["order"] == "desc"
    assert [r["participant"] for r in by_quality["data"]] == [None, "alice", "bob"]
    local = client.get(f"{T}/leaderboard", params={"hardware": "local"}).json()
    assert [r["participant"] for r in local["data"]] == ["alice", None]
    page = client.get(f"{T}/leaderboard", params={"limit": 1, "offset": 1}).json()
    assert page["count"] == 3 and [r["participant"] for r in page["data"]] == ["alice"]
    verified = client.get(f"{T}/leaderboard", params={"verified_only": True}).json()
    assert [r["is_baseline"] for r in verified["data"]] == [True]
    assert_error(client.get(f"{T}/leaderboard", params={"sort": "speed"}), 422,
                 "validation_error")
    assert_error(client.get(f"{T}/leaderboard", params={"limit": 0}), 422, "validation_error")


def test_referee_verdicts_update_leaderboard(client: TestClient, tournament, alice: str,
                                             bob: str) -> None:
    good = submit(client, alice).json()["id"]
    bad = submit(client, bob, submission_body(make_record(p90=1.0, p99=1.4))).json()["id"]
    assert_error(client.post(f"/api/v1/submissions/{good}/referee", headers=auth(alice),
                             json={"metrics": {"latency_p90_ms": 1.2}}), 403, "forbidden")
    ok = client.post(f"/api/v1/submissions/{good}/referee", headers=ADMIN,
                     json={"metrics": {"latency_p90_ms": 1.26, "quality": 0.96}})
    assert ok.status_code == 201 and ok.json()["verdict"] == "verified"
    assert abs(ok.json()["ratios"]["latency_p90_ms"] - 1.05) < 1e-9
    disputed = client.post(f"/api/v1/submissions/{bad}/referee", headers=ADMIN,
                           json={"metrics": {"latency_p90_ms": 1.5}, "note": "50% slower"})
    assert disputed.json()["verdict"] == "disputed"
    shown = client.get(f"/api/v1/submissions/{good}").json()
    assert shown["status"] == "verified" and shown["referee"]["verdict"] == "verified"
    rows = client.get(f"{T}/leaderboard").json()["data"]
    assert {r["participant"]: r["status"] for r in rows} == {"alice": "verified",
                                                             "bob": "disputed"}
    only = client.get(f"{T}/leaderboard", params={"verified_only": True}).json()["data"]
    assert [r["participant"] for r in only] == ["alice"]


def test_body_limit_413(settings: Settings, migrated: str) -> None:
    settings.max_body_bytes = 2_000
    with TestClient(create_app(settings)) as client:
        response = client.post("/api/v1/participants", content=b"{" + b" " * 5_000 + b"}",
                               headers={"Content-Type": "application/json"})
    assert_error(response, 413, "payload_too_large")


def test_rate_limit_429(settings: Settings, migrated: str) -> None:
    settings.rate_limit_burst, settings.rate_limit_per_minute = 3, 1
    with TestClient(create_app(settings)) as client:
        key = register(client, "carol")
        codes = [client.get("/api/v1/participants/me", headers=auth(key)).status_code
                 for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        limited = client.get("/api/v1/participants/me", headers=auth(key))
        assert_error(limited, 429, "rate_limited")
        assert int(limited.headers["Retry-After"]) >= 1
        other = register(client, "dave")
        assert client.get("/api/v1/participants/me", headers=auth(other)).status_code == 200


def test_no_stack_traces(client: TestClient, tournament, monkeypatch) -> None:
    from leaderboard import crud

    def boom(**_):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(crud, "list_tournaments", boom)
    response = client.get("/api/v1/tournaments")
    error = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text and "Traceback" not in response.text
    assert error["message"] == "internal server error"
    assert_error(client.get("/api/v1/nowhere"), 404, "not_found")
    assert_error(client.delete(T), 405, "method_not_allowed")

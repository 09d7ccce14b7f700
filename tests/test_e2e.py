"""The whole tournament loop with real parts: a uvicorn leaderboard process, a local Ray,
real builds and measurements of ``digits``.

register → create tournament → optimize → submit (twice: no duplicates) → the leaderboard
ranks the rows → reproduce within tolerance → the referee verifies them → a record with
its latencies divided by 3 fails ``reproduce`` (exit 4) and is disputed by the referee.

Tolerances are loose (latency within 2× either way) because µs-scale models measured by the
fast protocol are noisy (a re-run 1.5× slower than the search's measurement was seen here);
the tamper factor (10×) is far outside them, so the test can fail but not flake: running the
wrong variant (linear vs mlp-2x256 is ~3×) or a doctored claim fails it.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FAST_PROTOCOL
from tuner.cli import main, userconfig
from tuner.cli.demo import LeaderboardProcess
from tuner.cli.tournament import submit_baseline
from tuner.client import LeaderboardClient
from tuner.trial.results import Stability

pytestmark = pytest.mark.slow

ADMIN_TOKEN = "e2e-admin-token"
SLUG = "digits-e2e"
SPACE = {"backend": "ort", "batch": 1, "threads": 1, "ort_graph_optimization": "all",
         "variant": ["linear", "mlp-64", "mlp-2x256"], "precision": ["fp32", "int8-dynamic"],
         "per_channel": False}
OBJECTIVES = ["latency_p90_ms", "quality_ratio"]
CONSTRAINTS = ["quality_ratio >= 0.9"]
# Digits' claims are µs-scale (0.01 ms p90), where this VM's speed drifting up to 2× within
# minutes decides a re-run (claimed 0.0108 ms, re-measured 0.0228 ms in one CI run): ±200 %
# lets an honest claim through and still catches the 10× tampered one.
LOOSE = ["--latency-tolerance", "2.0"]
TAMPER = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("PODIUM_CONFIG", str(tmp_path / "config.toml"))
    for name in userconfig.ENV_OVERRIDES.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PODIUM_ADMIN_TOKEN", ADMIN_TOKEN)
    process = LeaderboardProcess(home=tmp_path, port=free_port(), admin_token=ADMIN_TOKEN)
    process.start()
    try:
        yield process.url
    finally:
        process.stop()


def _judged(args: list[str], verdict: int, capsys: pytest.CaptureFixture[str]) -> bool:
    """Run ``podium reproduce``: True when it judged (exit ``verdict``); False when its re-run
    measured unstable twice and it judged nothing (exit 1, saying so)."""
    code = main(args)
    if code == 1:
        said = capsys.readouterr()
        assert "unstable" in said.out + said.err, said
        return False
    assert code == verdict
    return True


def tampered(record: dict[str, Any]) -> dict[str, Any]:
    """The same trial claiming 10× lower latency and 10× the throughput (new trial id), with
    energy and cost edited to match, so only re-measuring can tell."""
    metrics = dict(record["metrics"])
    for name in ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_mean_ms",
                 "energy_mj_per_inference", "cost_per_million_usd"):
        if metrics[name] is not None:
            metrics[name] /= TAMPER
    metrics["throughput_per_s"] *= TAMPER
    return record | {"trial_id": uuid.uuid4().hex, "metrics": metrics}


def test_tournament_end_to_end(server: str, tmp_path: Path, digits: Any,
                               capsys: pytest.CaptureFixture[str]) -> None:
    from tuner.search.optimize import optimize

    assert main(["register", "--url", server, "--name", "e2e"]) == 0
    assert main(["tournament", "create", "--slug", SLUG, "--title", "E2E", "--workload",
                 "digits", *[a for o in OBJECTIVES for a in ("--objective", o)],
                 *[a for c in CONSTRAINTS for a in ("--constraint", c)]]) == 0

    study, storage = f"e2e-{uuid.uuid4().hex[:8]}", f"sqlite:///{tmp_path / 'studies.db'}"
    result = optimize(digits, OBJECTIVES, CONSTRAINTS, trials=6, space=SPACE, sampler="grid",
                      study=study, storage=storage, protocol=FAST_PROTOCOL)
    assert len(result.front) >= 1
    path = tmp_path / "optimize.json"
    result.to_json(path)
    assert main(["submit", "--tournament", SLUG, str(path)]) == 0
    assert main(["submit", "--tournament", SLUG, str(path)]) == 0  # replayed, not duplicated

    config = userconfig.load()
    with LeaderboardClient(server, api_key=config.api_key, admin_token=ADMIN_TOKEN) as client:
        posted = submit_baseline(client, SLUG, result.baseline)
        if posted is None:  # a µs-scale model on a busy 2-core machine: rule 4 keeps it off
            assert result.baseline.metrics.stability is Stability.UNSTABLE
            assert "baseline not submitted: its measurement is unstable" in \
                capsys.readouterr().out
        board = client.leaderboard(SLUG)["data"]
        ranked = [r for r in board if not r["is_baseline"]]
        assert sorted(r["config"]["variant"] + r["config"]["precision"] for r in ranked) == \
            sorted(r.config["variant"] + r.config["precision"] for r in result.front)
        assert [r["rank"] for r in ranked] == list(range(1, len(ranked) + 1))
        p90 = [r["metrics"]["latency_p90_ms"] for r in ranked]
        assert p90 == sorted(p90)
        assert any(r["is_baseline"] for r in board) == (posted is not None)

        top = client.submission(ranked[0]["submission_id"])
        website_url = top["url"].replace("/api/v1/submissions/", "/submissions/")
        if _judged(["reproduce", website_url, *LOOSE], 0, capsys):
            out = capsys.readouterr().out
            assert "claimed vs measured" in out and "quality_ratio" in out

        fake = client.submit(SLUG, tampered(top["record"]), idempotency_key="tampered")
        _judged(["reproduce", fake["id"], *LOOSE], 4, capsys)

        assert main(["referee", "--tournament", SLUG, "--top", "10", *LOOSE]) == 0
        said = capsys.readouterr().out
        statuses = {r["submission_id"]: r["status"]
                    for r in client.leaderboard(SLUG)["data"] if not r["is_baseline"]}
        fake_status = statuses.pop(fake["id"])
        # An honest claim is never disputed, a tampered one never verified. One whose re-run
        # measured unstable twice (µs-scale calls on a 2-core VM, whose speed now and then
        # halves mid-process) is skipped, not judged, and the referee says why.
        assert fake_status in ("disputed", "accepted"), fake_status
        assert set(statuses.values()) <= {"verified", "accepted"}, statuses
        if "accepted" in (fake_status, *statuses.values()):
            assert "skipped" in said and "unstable" in said, said
        verified = client.leaderboard(SLUG, verified_only=True)["data"]
        assert {r["submission_id"] for r in verified if not r["is_baseline"]} == {
            sid for sid, status in statuses.items() if status == "verified"}
        if fake_status == "disputed":
            check = client.submission(fake["id"])["referee"]
            assert check["verdict"] == "disputed" and check["ratios"]["latency_p90_ms"] > 2
    assert json.loads(path.read_text())["pareto"]
    # The winner leaves as a bundle: from the stored study and from its submission, the same
    # files (the website's submission page prints the second command).
    front = tmp_path / "from-study"
    assert main(["export", "--study", study, "--storage", storage, "--pick", "pareto:1",
                 str(front)]) == 0
    shipped = json.loads((front / "inference.json").read_text())
    assert shipped["trial_id"] == result.front[0].trial_id
    assert shipped["recorded_speedup"]["source"] == "search (baseline trial)"  # no confirmation
    command = top["export"].split()
    assert command[:3] == ["podium", "export", "--submission"]
    assert main([*command[1:-1], str(tmp_path / "from-submission")]) == 0
    again = json.loads((tmp_path / "from-submission" / "inference.json").read_text())
    assert again["trial_id"] == top["record"]["trial_id"]
    assert again["files"] == top["record"]["artifact"]["sha256"]

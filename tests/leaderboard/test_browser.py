"""The website in a real headless Chromium against a real uvicorn server, under its CSP:
every page renders (the Pareto chart included) with no CSP violation in the console.

Skips, saying why, when /usr/bin/chromium is absent (CI installs Debian's chromium).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.leaderboard.conftest import (
    ADMIN,
    auth,
    make_record,
    submission_body,
    tournament_body,
)
from tests.leaderboard.test_web import assert_secure_html

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is absent: apt-get install -y chromium chromium-driver")


# What Chromium logs (to stderr, with --enable-logging) when the page's CSP blocks something.
CSP_VIOLATION = re.compile(r"Content Security Policy|Refused to|strict CSP")


def dump_dom(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran; fails on any CSP violation in the console."""
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
               "--enable-logging=stderr", "--v=0",
               f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    violations = [line for line in result.stderr.splitlines() if CSP_VIOLATION.search(line)]
    assert not violations, f"{url}: " + "\n".join(violations)[:2000]
    return result.stdout


def test_tournament_and_submission_pages_render(live_server: str, tmp_path: Path) -> None:
    api = f"{live_server}/api/v1"
    with httpx.Client(timeout=10) as client:
        assert client.post(f"{api}/tournaments", json=tournament_body(),
                           headers=ADMIN).status_code == 201
        key = client.post(f"{api}/participants", json={"name": "alice"}).json()["api_key"]
        ids = []
        for p90, quality, profile in [(1.2, 0.96, "local"), (0.9, 0.95, "c7i-large"),
                                      (1.0, 0.97, "local")]:
            response = client.post(
                f"{api}/tournaments/digits-latency/submissions", headers=auth(key),
                json=submission_body(make_record(p50=0.8, p90=p90, p99=2.0, quality=quality,
                                                 profile=profile)))
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        assert client.post(f"{api}/tournaments/digits-latency/baseline", headers=ADMIN,
                           json=submission_body(make_record(p90=1.8, p99=2.2))).status_code == 201

    dom = dump_dom(f"{live_server}/tournaments/digits-latency", tmp_path / "profile")
    rows = re.findall(r'<tr class="row( baseline)?" data-submission="([0-9a-f-]+)"', dom)
    assert len(rows) == 4 and sum(1 for baseline, _ in rows if baseline) == 1
    assert [sid for baseline, sid in rows if not baseline] == [ids[1], ids[2], ids[0]]
    assert 'class="main-svg"' in dom, "plotly did not render the Pareto chart"
    assert dom.count('class="point"') >= 4, "the chart lacks its markers"
    assert "c7i-large" in dom and "baseline" in dom

    page = dump_dom(f"{live_server}/submissions/{ids[0]}", tmp_path / "profile")
    assert f"podium reproduce {live_server}/api/v1/submissions/{ids[0]}" in page
    assert "All checks passed." in page

    assert "Digits: fastest accurate MLP" in dump_dom(f"{live_server}/", tmp_path / "profile")
    assert 'id="error-status">404' in dump_dom(f"{live_server}/tournaments/nope",
                                               tmp_path / "profile")
    dump_dom(f"{live_server}/docs", tmp_path / "profile")  # Swagger UI's CDN is unreachable
    with httpx.Client(timeout=10) as client:
        for path in ("/", "/tournaments/digits-latency", f"/submissions/{ids[0]}", "/docs"):
            assert_secure_html(client.get(f"{live_server}{path}"))

"""Server-rendered pages through the ASGI app (the real browser test is test_browser.py)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from leaderboard.web.routes import plotly_js_path
from tests.leaderboard.conftest import ADMIN, auth, make_record, submission_body

T = "/api/v1/tournaments/digits-latency"


def test_pages(client: TestClient, tournament, alice: str) -> None:
    sid = client.post(f"{T}/submissions", headers=auth(alice), json=submission_body(
        make_record(config={"backend": "ort", "precision": "int8-dynamic"}),
        method="dynamic int8")).json()["id"]
    client.post(f"{T}/baseline", headers=ADMIN,
                json=submission_body(make_record(p90=2.0, p99=2.5)))
    client.post(f"/api/v1/submissions/{sid}/referee", headers=ADMIN,
                json={"metrics": {"latency_p90_ms": 1.2}})

    index = client.get("/")
    assert index.status_code == 200 and "Digits: fastest accurate MLP" in index.text

    page = client.get("/tournaments/digits-latency").text
    assert len(re.findall(r'<tr class="row', page)) == 2
    assert 'class="row baseline"' in page and "badge verified" in page
    assert "latency_p90_ms ↓" in page and "quality_ratio ↑" in page and "ms per call" in page
    assert '<script src="/static/plotly.min.js"></script>' in page
    assert "precision = int8-dynamic" in page  # hover text carries the configuration

    sub = client.get(f"/submissions/{sid}").text
    assert f"podium reproduce http://testserver/api/v1/submissions/{sid}" in sub
    assert f"podium export --submission http://testserver/api/v1/submissions/{sid} " in sub
    assert "estimated_tdp" in sub and "measured" in sub and "1.20%" in sub
    assert "onnxruntime" in sub and "Test CPU" in sub and "verified" in sub
    assert "All checks passed." in sub


def test_hardware_filter_and_sort_links(client: TestClient, tournament, alice: str) -> None:
    client.post(f"{T}/submissions", headers=auth(alice),
                json=submission_body(make_record(profile="c7i-large")))
    page = client.get("/tournaments/digits-latency", params={"hardware": "local"}).text
    assert 'class="row' not in page
    page = client.get("/tournaments/digits-latency", params={"hardware": "c7i-large"}).text
    assert page.count('class="row') == 1
    assert "?sort=latency_p90_ms&amp;order=desc" in page  # clicking the sorted column flips


def test_plotly_served_locally(client: TestClient) -> None:
    response = client.get("/static/plotly.min.js")
    assert response.status_code == 200
    assert len(response.content) == plotly_js_path().stat().st_size > 1_000_000


def test_rejected_submission_page_is_404(client: TestClient, tournament, alice: str) -> None:
    error = client.post(f"{T}/submissions", headers=auth(alice),
                        json=submission_body(make_record(profile="gpu-x"))).json()["error"]
    assert client.get(f"/submissions/{error['submission_id']}").status_code == 404


BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def test_a_browser_gets_error_pages_in_html_and_api_clients_keep_json(
        client: TestClient, tournament) -> None:
    for path, status, says in (("/tournaments/no-such-tournament", 404, "no-such-tournament"),
                               ("/submissions/not-a-uuid", 422, "invalid request"),
                               ("/no/such/page", 404, "Not Found")):
        page = client.get(path, headers=BROWSER)
        assert page.status_code == status
        assert page.headers["content-type"].startswith("text/html")
        assert f'<h1 id="error-status">{status}' in page.text and says in page.text
        assert "All tournaments" in page.text  # the site's layout, a way back
        api = client.get(path, headers={"Accept": "application/json"})
        assert api.status_code == status and api.json()["error"]["message"]
        assert client.get(path).json()["error"]  # no Accept: JSON
    # The API answers JSON whatever a browser accepts.
    api = client.get("/api/v1/tournaments/no-such-tournament", headers=BROWSER)
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"


def assert_secure_html(response) -> str:  # type: ignore[no-untyped-def]
    """The security headers of an HTML page; returns its CSP nonce."""
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "base-uri 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    nonce = re.search(r"'nonce-([A-Za-z0-9_-]{16,})'", policy)
    assert nonce is not None, policy
    return nonce.group(1)


def test_every_html_page_carries_the_security_headers(client: TestClient, tournament,
                                                      alice: str) -> None:
    sid = client.post(f"{T}/submissions", headers=auth(alice),
                      json=submission_body()).json()["id"]
    pages = ["/", "/tournaments/digits-latency", f"/submissions/{sid}", "/docs"]
    nonces = set()
    for path in pages:
        page = client.get(path, headers=BROWSER)
        assert page.status_code == 200, path
        nonce = assert_secure_html(page)
        inline = re.findall(r"<(script|style)\b([^>]*)>", page.text)
        # Every inline block carries this response's nonce; scripts come from this site.
        for tag, attributes in inline:
            assert f'nonce="{nonce}"' in attributes or (
                tag == "script" and 'src="/static/' in attributes), (path, tag, attributes)
        nonces.add(nonce)
    assert len(nonces) == len(pages)  # a fresh nonce per response
    policy = client.get("/tournaments/digits-latency").headers["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in policy and "default-src 'none'" in policy
    error = client.get("/tournaments/nope", headers=BROWSER)
    assert error.status_code == 404
    assert_secure_html(error)
    api = client.get(f"{T}/leaderboard")
    assert api.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in api.headers

"""An httpx client for the leaderboard API (``/api/v1``), used by every tournament command.

It speaks HTTP only (it imports nothing of ``leaderboard``) and sits at the bottom of the
engine, beside :mod:`tuner.errors`, because two stages use it: the CLI (register, submit,
referee, the demo) and the knowledge stage (:mod:`tuner.knowledge.pull`).

Network errors and 5xx answers are retried with exponential backoff (a POST without an
``Idempotency-Key`` only when the request never reached the server, so a retry cannot
create a row twice); everything else fails at once. Every failure is a one-line
:class:`~tuner.errors.PodiumError`::

    PodiumError
    ├── InputError
    │   ├── LeaderboardUnreachable   no answer at the URL (server down, bad host, timeout)
    │   └── LeaderboardRefused       a 4xx: the server's message and its details
    ├── SubmissionRejected           422 submission_rejected: every checker reason
    └── LeaderboardFailed            5xx after the last retry, or a non-JSON answer
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from tuner.errors import InputError, PodiumError, SubmissionRejected

API_PREFIX = "/api/v1"
RETRIES = 4
BACKOFF_S = 0.5

_UNREACHABLE = "cannot reach the leaderboard at {url}: {reason}"
_FAILED = "the leaderboard at {url} failed: HTTP {status}: {message}"
_NOT_JSON = "the leaderboard at {url} answered HTTP {status} with no JSON (is it a Podium server?)"


class LeaderboardUnreachable(InputError):
    """Nothing answered at the leaderboard URL."""


class LeaderboardRefused(InputError):
    """The leaderboard refused the request (4xx); ``status`` and ``details`` say why."""

    def __init__(self, message: str, *, status: int, code: str = "",
                 details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.details = status, code, list(details or [])


class LeaderboardFailed(PodiumError):
    """The leaderboard kept failing (5xx) or did not speak its API."""


def _detail_text(detail: Any) -> str:
    if isinstance(detail, dict):
        where = ".".join(str(p) for p in detail.get("loc", []) if p != "body")
        return f"{where}: {detail.get('message', detail)}" if where else str(detail)
    return str(detail)


class LeaderboardClient:
    """Calls to one leaderboard server.

    Args:
        url: the server's base URL (``http://host:port``), without ``/api/v1``.
        api_key: a participant key, sent as ``Authorization: Bearer`` on participant calls.
        admin_token: the host's token, sent on admin calls instead of the key.
        retries: attempts after the first, on network errors and 5xx (default RETRIES).
        backoff_s: the first wait; it doubles with every retry (default BACKOFF_S).
        transport: an httpx transport (tests pass ``httpx.MockTransport``).

    Example:
        >>> client = LeaderboardClient("http://127.0.0.1:8000")  # doctest: +SKIP
        >>> client.leaderboard("digits-latency")["data"][0]["rank"]  # doctest: +SKIP
        1
    """

    def __init__(self, url: str, *, api_key: str | None = None, admin_token: str | None = None,
                 retries: int | None = None, backoff_s: float | None = None,
                 timeout_s: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.api_key, self.admin_token = api_key, admin_token
        # Read the module defaults per client, so tests can shorten the backoff.
        self.retries = RETRIES if retries is None else retries
        self.backoff_s = BACKOFF_S if backoff_s is None else backoff_s
        self._http = httpx.Client(base_url=self.url + API_PREFIX, timeout=timeout_s,
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LeaderboardClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ endpoints

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def register(self, name: str, *, token: str | None = None) -> dict[str, Any]:
        """Register a participant; the answer holds the API key (shown only this once).

        ``token``: the registration token a host hands out when its server registers only
        with one (sent as the ``Registration-Token`` header).
        """
        headers = {"Registration-Token": token} if token else None
        return self._call("POST", "/participants", json={"name": name}, headers=headers)

    def me(self) -> dict[str, Any]:
        return self._call("GET", "/participants/me", auth=self.api_key)

    def create_tournament(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/tournaments", json=body, auth=self.admin_token)

    def tournaments(self) -> list[dict[str, Any]]:
        return self._call("GET", "/tournaments", params={"limit": 500})["data"]

    def tournament(self, slug: str) -> dict[str, Any]:
        return self._call("GET", f"/tournaments/{slug}")

    def submit(self, slug: str, record: dict[str, Any], *, idempotency_key: str,
               method: str | None = None, code_url: str | None = None,
               baseline: bool = False) -> dict[str, Any]:
        """Submit a TrialResult (``baseline=True``: the host's baseline row, admin token).

        Raises:
            SubmissionRejected: the checker refused it; ``reasons`` holds every reason.
        """
        body: dict[str, Any] = {"record": record}
        body |= {k: v for k, v in (("method", method), ("code_url", code_url)) if v}
        path = f"/tournaments/{slug}/{'baseline' if baseline else 'submissions'}"
        return self._call("POST", path, json=body,
                          auth=self.admin_token if baseline else self.api_key,
                          headers={"Idempotency-Key": idempotency_key})

    def submission(self, submission_id: str) -> dict[str, Any]:
        return self._call("GET", f"/submissions/{submission_id}",
                          auth=self.admin_token or self.api_key)

    def referee(self, submission_id: str, *, metrics: dict[str, float], verdict: str,
                note: str | None = None) -> dict[str, Any]:
        return self._call("POST", f"/submissions/{submission_id}/referee",
                          json={"metrics": metrics, "verdict": verdict, "note": note},
                          auth=self.admin_token)

    def leaderboard(self, slug: str, *, verified_only: bool = False, limit: int = 500,
                    offset: int = 0) -> dict[str, Any]:
        return self._call("GET", f"/tournaments/{slug}/leaderboard",
                          params={"verified_only": str(verified_only).lower(), "limit": limit,
                                  "offset": offset})

    # ------------------------------------------------------------------ transport

    def _call(self, method: str, path: str, *, json: Any = None,
              params: dict[str, Any] | None = None, auth: str | None = None,
              headers: dict[str, str] | None = None) -> Any:
        headers = dict(headers or {})
        if auth:
            headers["Authorization"] = f"Bearer {auth}"
        replayable = method == "GET" or "Idempotency-Key" in headers
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, json=json, params=params,
                                              headers=headers)
            except httpx.TransportError as exc:
                sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if attempt >= self.retries or (sent and not replayable):
                    reason = str(exc) or type(exc).__name__
                    raise LeaderboardUnreachable(_UNREACHABLE.format(url=self.url,
                                                                     reason=reason)) from None
            else:
                if response.status_code < 500 or attempt >= self.retries:
                    return self._decode(response)
            time.sleep(self.backoff_s * 2**attempt)
            attempt += 1

    def _decode(self, response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            raise LeaderboardFailed(_NOT_JSON.format(url=self.url,
                                                     status=response.status_code)) from None
        if response.is_success:
            return body
        error = body.get("error", {}) if isinstance(body, dict) else {}
        message = str(error.get("message") or response.reason_phrase)
        details = error.get("details") or []
        if error.get("code") == "submission_rejected":
            url = f" ({error['url']})" if error.get("url") else ""
            raise SubmissionRejected(f"{message}{url}", reasons=[str(d) for d in details])
        if response.status_code >= 500:
            raise LeaderboardFailed(_FAILED.format(url=self.url, status=response.status_code,
                                                   message=message))
        shown = [_detail_text(d) for d in details if _detail_text(d) not in message]
        text = f"{message} ({'; '.join(shown)})" if shown else message
        raise LeaderboardRefused(f"HTTP {response.status_code}: {text}",
                                 status=response.status_code, code=str(error.get("code", "")),
                                 details=details)

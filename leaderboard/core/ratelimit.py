"""Rate limits, counted by the ``limits`` library: per API key, per client address.

Three limits, all set in :class:`~leaderboard.core.config.Settings`:

- every request that carries a participant key, per key: ``rate_limit_burst`` requests in
  any window of ``burst / rate_limit_per_minute`` minutes (the sustained rate, with bursts);
- every write under ``/api/v1`` (POST, PUT, PATCH, DELETE), per client address:
  ``write_limit_per_address``, so that many keys (or none) from one machine cannot flood;
- registration without the admin token, per client address: ``registration_limit``.

A request over a limit is refused before it reads or writes the database: ``429
rate_limited``, the error body every 4xx uses, and ``Retry-After`` in seconds.

Each limit holds in *any* window of its length (a moving window: the storage keeps each
counted request's time, at most the limit's amount of them per key). The cheaper sliding-window
counter only estimates the previous window's share: just past a window boundary it let an 8th
request through a 7/minute limit.

Counts live in ``rate_limit_storage`` (a ``limits`` storage URI; default ``memory://``, so
each server process counts alone). The in-memory storage answers in microseconds and is
asked on the event loop; a network storage (``redis://…``) is asked from a worker thread.
The client address is the socket's peer, or what a trusted proxy says it is (uvicorn's
``--proxy-headers`` / ``FORWARDED_ALLOW_IPS``).
"""

from __future__ import annotations

import math
import time

from fastapi.concurrency import run_in_threadpool
from limits import RateLimitItem, RateLimitItemPerSecond, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import Request

from leaderboard.core.errors import ApiError

_MESSAGE = "rate limit exceeded ({what}: {limit}); retry in {retry} s"


def key_limit(*, per_minute: float, burst: int) -> RateLimitItem:
    """``burst`` requests per window, the window sized so the long-run rate is ``per_minute``."""
    return RateLimitItemPerSecond(burst, max(1, round(burst * 60 / per_minute)))


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class RateLimits:
    """The app's limits and their counts (one instance per app, in ``app.state``)."""

    def __init__(self, *, storage_uri: str, per_minute: float, burst: int,
                 write_per_address: str, registration: str) -> None:
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self.local = storage_uri.startswith("memory://")
        self.per_key = [key_limit(per_minute=per_minute, burst=burst)]
        self.write_per_address = parse_many(write_per_address)
        self.registration = parse_many(registration)

    def hit(self, items: list[RateLimitItem], what: str, who: str) -> None:
        """Count one request against ``items``; raise the 429 when one is exhausted."""
        for item in items:
            if not self.limiter.hit(item, what, who):
                reset = self.limiter.get_window_stats(item, what, who).reset_time
                retry = max(1, math.ceil(reset - time.time()))
                raise ApiError(429, _MESSAGE.format(what=what, limit=item, retry=retry),
                               headers={"Retry-After": str(retry)})

    async def ahit(self, items: list[RateLimitItem], what: str, who: str) -> None:
        """:meth:`hit` from the event loop."""
        if self.local:
            self.hit(items, what, who)
        else:
            await run_in_threadpool(self.hit, items, what, who)

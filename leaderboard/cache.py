"""A per-tournament cache of ranked leaderboards, invalidated on every write.

Each tournament has a generation number; a write bumps it and drops its entries. A value
computed from a read that began before the write carries the old generation and is not
stored, so a reader can never put a stale leaderboard back. The cache lives in one process:
serve with one worker (as ``podium leaderboard serve`` does).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class LeaderboardCache:
    def __init__(self, max_entries: int = 256) -> None:
        self._max = max_entries
        self._lock = threading.Lock()
        self._data: OrderedDict[tuple[str, Hashable], Any] = OrderedDict()
        self._generation: dict[str, int] = {}

    def generation(self, slug: str) -> int:
        with self._lock:
            return self._generation.get(slug, 0)

    def get(self, slug: str, key: Hashable) -> Any | None:
        with self._lock:
            value = self._data.get((slug, key))
            if value is not None:
                self._data.move_to_end((slug, key))
            return value

    def put(self, slug: str, key: Hashable, value: Any, *, generation: int) -> None:
        with self._lock:
            if self._generation.get(slug, 0) != generation:
                return
            self._data[(slug, key)] = value
            self._data.move_to_end((slug, key))
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def invalidate(self, slug: str) -> None:
        with self._lock:
            self._generation[slug] = self._generation.get(slug, 0) + 1
            for stale in [k for k in self._data if k[0] == slug]:
                del self._data[stale]

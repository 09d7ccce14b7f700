"""API fuzzing with schemathesis (bounded for CI): no server error, and every response
conforms to the OpenAPI schema. The long run is bench/leaderboard_fuzz.py."""

from __future__ import annotations

import pytest

from leaderboard.core.config import Settings
from leaderboard.main import create_app
from tests.leaderboard import fuzz


@pytest.mark.slow
def test_schemathesis_whole_schema(settings: Settings, migrated: str) -> None:
    report = fuzz.run(create_app(settings), max_examples=15)
    print(report.summary())
    assert report.cases > 200
    assert report.failures == [], "\n".join(report.failures[:10])

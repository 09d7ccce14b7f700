"""Long schemathesis run over the whole leaderboard API (in-process ASGI, fresh SQLite DB).

The CI test (tests/leaderboard/test_fuzz.py) runs the same harness with a few examples per
operation; this one runs many, and ``--strict`` adds schemathesis's negative-data and
response-header checks. Prints the number of cases run and every failure; exit 1 on any.
Usage: python bench/leaderboard_fuzz.py [--examples N] [--strict]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from leaderboard.core.config import Settings  # noqa: E402
from leaderboard.core.db import create_db_engine  # noqa: E402
from leaderboard.main import create_app  # noqa: E402
from leaderboard.migrate import upgrade  # noqa: E402
from tests.leaderboard import fuzz  # noqa: E402
from tests.leaderboard.conftest import ADMIN_TOKEN  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=200,
                        help="examples per operation, data mode and path-parameter choice")
    parser.add_argument("--strict", action="store_true",
                        help="also negative_data_rejection and response_headers_conformance")
    args = parser.parse_args()
    checks = list(fuzz.CHECKS)
    if args.strict:
        from schemathesis.checks import negative_data_rejection, response_headers_conformance

        checks += [negative_data_rejection, response_headers_conformance]
    with tempfile.TemporaryDirectory(prefix="podium-fuzz-") as tmp:
        # Limits out of the way: a fuzz run explores the schema, not the rate limiter.
        settings = Settings(home=Path(tmp), admin_token=ADMIN_TOKEN,
                            rate_limit_per_minute=1e9, rate_limit_burst=10**9,
                            write_limit_per_address="1000000000/minute",
                            registration_limit="1000000000/minute")
        engine = create_db_engine(settings.resolved_database_url())
        upgrade(engine)
        engine.dispose()
        started = time.perf_counter()
        report = fuzz.run(create_app(settings), max_examples=args.examples, checks=checks)
        elapsed = time.perf_counter() - started
    for failure in report.failures:
        print("FAIL", failure)
    print(f"schemathesis: {report.summary()} in {elapsed:.0f} s "
          f"({len(checks)} checks: {', '.join(c.__name__ for c in checks)})")
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

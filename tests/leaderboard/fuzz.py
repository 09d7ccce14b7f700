"""Schemathesis over the whole OpenAPI schema, in-process (ASGI): shared by the CI test
(tests/leaderboard/test_fuzz.py, bounded) and the long run (bench/leaderboard_fuzz.py).

Every operation is fuzzed with positive (schema-valid) and negative (schema-violating)
data, once with generated path parameters and once with ones that name real rows (so the
fuzzer gets past 404s), and each case is sent without credentials, with a participant's key
or with the admin token. Each response must not be a server error and must conform to the
schema: status code documented, content type and body as declared.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.leaderboard.conftest import (
    ADMIN,
    auth,
    make_record,
    submission_body,
    tournament_body,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@dataclass
class FuzzReport:
    cases: int = 0
    operations: int = 0
    failures: list[str] = field(default_factory=list)
    by_status: dict[int, int] = field(default_factory=dict)

    def summary(self) -> str:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_status.items()))
        return (f"{self.cases} cases over {self.operations} operations, "
                f"{len(self.failures)} failures (statuses {statuses})")


def seed(app: FastAPI) -> dict[str, Any]:
    """A tournament, a participant and one accepted submission to aim the fuzzer at."""
    with TestClient(app) as client:
        client.post("/api/v1/tournaments", json=tournament_body(quota_per_day=1_000_000,
                                                                 quota_total=1_000_000),
                    headers=ADMIN).raise_for_status()
        registered = client.post("/api/v1/participants", json={"name": "fuzzer"})
        registered.raise_for_status()
        key = registered.json()["api_key"]
        submitted = client.post("/api/v1/tournaments/digits-latency/submissions",
                                json=submission_body(make_record()), headers=auth(key))
        submitted.raise_for_status()
        return {"key": key, "participant_id": registered.json()["id"],
                "slug": "digits-latency", "submission_id": submitted.json()["id"]}


def run(app: FastAPI, *, max_examples: int, seed_data: dict[str, Any] | None = None,
        checks: list[Any] | None = None) -> FuzzReport:
    """Fuzz every operation of ``app``; collect failures instead of stopping at the first."""
    data = seed_data or seed(app)
    credentials = itertools.cycle([{}, auth(data["key"]), ADMIN])
    known = {"slug": data["slug"], "submission_id": data["submission_id"],
             "participant_id": data["participant_id"]}
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    report = FuzzReport()
    # Key rotation and revocation go last: they end the fuzzer's own key.
    operations = sorted((result.ok() for result in schema.get_all_operations()),
                        key=lambda op: op.path.endswith("/key"))
    for operation in operations:
        report.operations += 1
        names = {p.name for p in operation.path_parameters}
        fixed = [None] + ([{k: v for k, v in known.items() if k in names}] if names else [])
        for mode, path_parameters in itertools.product(
                (GenerationMode.POSITIVE, GenerationMode.NEGATIVE), fixed):
            strategy = operation.as_strategy(generation_mode=mode,
                                             path_parameters=path_parameters)
            _fuzz(strategy, max_examples, credentials, report, f"{operation.label} [{mode}]",
                  checks or CHECKS)
    return report


def _fuzz(strategy: Any, max_examples: int, credentials: Any, report: FuzzReport,
          label: str, checks: list[Any]) -> None:
    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def one(case: Any) -> None:
        report.cases += 1
        credential = next(credentials)
        if credential:  # else keep whatever Authorization the fuzzer made up
            case.headers = {**(case.headers or {}), **credential}
        try:
            response = case.call_and_validate(checks=checks)
        except (Exception, BaseExceptionGroup) as error:  # a failed check: keep fuzzing
            report.failures.append(f"{label} {case.method} {case.formatted_path}: "
                                   f"{' '.join(str(error).split())[:600]}")
            return
        report.by_status[response.status_code] = report.by_status.get(
            response.status_code, 0) + 1

    with contextlib.suppress(Unsatisfiable):  # negative mode, nothing to violate
        one()

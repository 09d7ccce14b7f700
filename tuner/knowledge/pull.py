"""Import a leaderboard's accepted and verified results into the knowledge store.

A tournament's ranked rows are other people's measurements of a known workload on a known
target: exactly the knowledge a warm start transfers from. ``pull`` walks every tournament
(or the ones named), pages through each leaderboard, reads the full record of every row
whose status is accepted or verified (rejected rows are never listed; disputed ones are
left out on purpose), and records it with the source ``leaderboard URL/SLUG (status)``.

A record finds its place in the store by its workload's graph fingerprint: the one the
record carries (``workload.fingerprint``, written by every trial since it existed), else
the local built-in of the same name and content hash. A record with neither is skipped and
counted, never guessed. Rows are keyed by trial id, so pulling twice adds nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from tuner.client import LeaderboardClient
from tuner.knowledge.store import KnowledgeStore
from tuner.trial.results import TrialResult

PULLED_STATUSES = frozenset({"accepted", "verified"})
PAGE = 500


@dataclass
class PullReport:
    """What one pull read, stored and skipped (reason → count)."""

    tournaments: int = 0
    read: int = 0
    new: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def pull(client: LeaderboardClient, store: KnowledgeStore, *,
         tournaments: list[str] | None = None) -> PullReport:
    """Pull the named tournaments (default: all) into ``store``; return what happened."""
    report = PullReport()
    slugs = tournaments or [t["slug"] for t in client.tournaments()]
    for slug in slugs:
        report.tournaments += 1
        items = []
        for row in _rows(client, slug):
            if row["status"] not in PULLED_STATUSES:
                report.skipped[f"status {row['status']}"] += 1
                continue
            report.read += 1
            item = _knowledge_item(client.submission(row["submission_id"]))
            if isinstance(item, str):
                report.skipped[item] += 1
                continue
            result, workload_fp = item
            items.append((result, workload_fp,
                          f"leaderboard {client.url}/{slug} ({row['status']})"))
        report.new += store.record_items(items)
    return report


def _rows(client: LeaderboardClient, slug: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        page = client.leaderboard(slug, limit=PAGE, offset=len(rows))
        rows += page["data"]
        if not page["data"] or len(rows) >= page["count"]:
            return rows


def _knowledge_item(submission: dict[str, Any]) -> tuple[TrialResult, dict[str, Any]] | str:
    """The record and its workload fingerprint, or the reason it cannot be used."""
    try:
        result = TrialResult.model_validate(submission["record"])
    except (ValidationError, KeyError, TypeError):
        return "unreadable record (another Podium version?)"
    if not result.ok:
        return "not a completed trial"
    if result.workload.fingerprint is not None:
        return result, result.workload.fingerprint
    local = _builtin_fingerprint(result.workload.name, result.workload.sha256)
    return (result, local) if local is not None else "no workload fingerprint"


def _builtin_fingerprint(name: str, sha256: str) -> dict[str, Any] | None:
    import workloads
    from tuner.knowledge.fingerprint import workload_fingerprint

    if name not in workloads.names():
        return None
    workload = workloads.get(name)
    return workload_fingerprint(workload).as_dict() if workload.sha256 == sha256 else None

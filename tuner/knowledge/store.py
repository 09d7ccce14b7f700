"""The knowledge store: every past TrialResult, keyed by what ran and where, for warm starts.

One SQLite file, ``knowledge.db`` under PODIUM_HOME, separate from the study storage so
that studies can be deleted without forgetting what they taught. A row is one
TrialResult with its workload fingerprint (:mod:`tuner.knowledge.fingerprint`), the hardware
fingerprint it carries, and where it came from (``local study NAME``, ``import FILE``,
``leaderboard URL``). ``trial_id`` is the primary key, so recording or importing the same
knowledge twice adds nothing. ``export``/``import_`` use JSON lines: files from several
machines can be concatenated and imported in any order.

>>> store = KnowledgeStore()  # doctest: +SKIP
>>> store.nearest(workload_fp, hardware_fp, k=3)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tuner.knowledge.fingerprint import (
    WorkloadFingerprint,
    hardware_hash,
    hardware_similarity,
    similarity,
)
from tuner.trial.results import TrialResult
from workloads.paths import home

_SCHEMA = """
CREATE TABLE IF NOT EXISTS knowledge (
    trial_id TEXT PRIMARY KEY,
    workload_hash TEXT NOT NULL,
    hardware_hash TEXT NOT NULL,
    workload_name TEXT NOT NULL,
    workload_sha256 TEXT NOT NULL,
    hardware_profile TEXT NOT NULL,
    source TEXT NOT NULL,
    workload_fp TEXT NOT NULL,
    hardware_fp TEXT NOT NULL,
    result TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS knowledge_pair ON knowledge (workload_hash, hardware_hash);
CREATE TABLE IF NOT EXISTS searches (
    search_id TEXT PRIMARY KEY,
    workload_hash TEXT NOT NULL,
    hardware_hash TEXT NOT NULL,
    workload_fp TEXT NOT NULL,
    hardware_fp TEXT NOT NULL,
    sampler TEXT NOT NULL,
    objective TEXT NOT NULL,
    measured INTEGER NOT NULL,
    trials_to_best INTEGER NOT NULL,
    best REAL,
    recorded_at TEXT NOT NULL
);
"""


def default_path() -> Path:
    return home() / "knowledge.db"


@dataclass(frozen=True)
class Neighbour:
    """A known (workload, hardware) pair and how alike it is to the one asked about."""

    workload_hash: str
    hardware_hash: str
    workload_name: str
    workload_sha256: str
    hardware_profile: str
    similarity: float
    trials: int
    fragility: float | None = None  # of its fp32 outputs (WorkloadFingerprint.fragility)

    def same_as(self, workload_fp: WorkloadFingerprint, hardware_fp: dict[str, Any],
                sha256: str) -> bool:
        """The very workload (content hash, not only the graph: the same layout with other
        weights computes other numbers) on the very machine."""
        return (self.workload_hash == workload_fp.hash and self.workload_sha256 == sha256
                and self.hardware_hash == hardware_hash(hardware_fp))


class KnowledgeStore:
    """Past results on disk. Not shared between threads; open one per thread."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def record(self, results: Iterable[TrialResult], workload: WorkloadFingerprint,
               source: str) -> int:
        """Store finished results of one workload; return how many were new."""
        fp = workload.as_dict()
        return self.record_items((r, fp, source) for r in results)

    def record_items(self, items: Iterable[tuple[TrialResult, dict[str, Any], str]]) -> int:
        """Store (result, workload fingerprint dict, source) triples; return how many were new."""
        return self._insert([_row(r, fp, source) for r, fp, source in items])

    def _insert(self, rows: list[tuple[Any, ...]]) -> int:
        before = self._count()
        with self._db:
            self._db.executemany("INSERT OR IGNORE INTO knowledge VALUES "
                                 "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return self._count() - before

    def _count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM knowledge").fetchone()[0]

    def nearest(self, workload_fp: WorkloadFingerprint, hardware_fp: dict[str, Any],
                k: int = 3) -> list[Neighbour]:
        """The ``k`` known pairs most like (workload, hardware), most alike first; two
        workloads with one graph summary but other content (weights, data) are two pairs.

        Similarity is the product of workload and hardware similarity, so results from
        other machines rank below the same machine's unless nothing else is known.
        """
        rows = self._db.execute(
            "SELECT workload_hash, hardware_hash, workload_name, workload_sha256, "
            "hardware_profile, MIN(workload_fp), MIN(hardware_fp), COUNT(*) FROM knowledge "
            "GROUP BY workload_hash, workload_sha256, hardware_hash").fetchall()
        found = []
        for w_hash, h_hash, name, sha, profile, w_fp, h_fp, count in rows:
            known = WorkloadFingerprint.from_dict(json.loads(w_fp))
            score = similarity(workload_fp, known) * hardware_similarity(hardware_fp,
                                                                         json.loads(h_fp))
            if score > 0:
                found.append(Neighbour(w_hash, h_hash, name, sha, profile, score, count,
                                       known.fragility))
        found.sort(key=lambda n: (-n.similarity, n.workload_hash, n.workload_sha256,
                                  n.hardware_hash))
        return found[:k]

    def results(self, neighbour: Neighbour) -> list[tuple[TrialResult, str]]:
        """Every stored result of one pair with its source, in a stable order."""
        rows = self._db.execute(
            "SELECT result, source FROM knowledge WHERE workload_hash = ? AND "
            "workload_sha256 = ? AND hardware_hash = ? ORDER BY trial_id",
            (neighbour.workload_hash, neighbour.workload_sha256, neighbour.hardware_hash))
        return [(TrialResult.model_validate_json(r), s) for r, s in rows]

    def export(self, path: Path | str) -> int:
        """Write every row as one JSON line; return how many."""
        rows = self._db.execute("SELECT source, workload_fp, hardware_fp, result "
                                "FROM knowledge ORDER BY trial_id").fetchall()
        with Path(path).open("w") as out:
            for source, w_fp, h_fp, result in rows:
                out.write(json.dumps({"source": source, "workload_fp": json.loads(w_fp),
                                      "hardware_fp": json.loads(h_fp),
                                      "result": json.loads(result)}) + "\n")
            for search in self.searches():
                out.write(json.dumps({"search": search}) + "\n")
            for entry in _tvm_entries():
                out.write(json.dumps({"tvm_record": entry}, sort_keys=True) + "\n")
        return len(rows)

    def import_(self, path: Path | str) -> int:
        """Merge an exported file; rows already known (same trial_id) are skipped."""
        rows, tuning = [], []
        for line in Path(path).read_text().splitlines():
            if line.strip():
                item = json.loads(line)
                if "search" in item:  # how a past search went: keep the first copy
                    self._put_search(item["search"], replace=False)
                    continue
                if "tvm_record" in item:
                    tuning.append(item["tvm_record"])
                    continue
                source = f"import {Path(path).name} ({item['source']})"
                rows.append(_row(TrialResult.model_validate(item["result"]),
                                 item["workload_fp"], source))
        _import_tvm_entries(tuning)
        return self._insert(rows)

    def record_search(self, search_id: str, *, workload: WorkloadFingerprint,
                      hardware_fp: dict[str, Any], sampler: str, objective: str,
                      measured: int, trials_to_best: int, best: float | None) -> None:
        """Remember how one cold search went (a resumed study replaces its line)."""
        self._put_search({
            "search_id": search_id, "workload_hash": workload.hash,
            "hardware_hash": hardware_hash(hardware_fp), "workload_fp": workload.as_dict(),
            "hardware_fp": hardware_fp, "sampler": sampler, "objective": objective,
            "measured": measured, "trials_to_best": trials_to_best, "best": best,
            "recorded_at": datetime.now(UTC).isoformat()}, replace=True)

    def _put_search(self, row: dict[str, Any], *, replace: bool) -> None:
        """One line of ``searches`` (a row of :meth:`searches`); an import keeps the first."""
        with self._db:
            self._db.execute(
                f"INSERT OR {'REPLACE' if replace else 'IGNORE'} INTO searches VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (row["search_id"], row["workload_hash"], row["hardware_hash"],
                 json.dumps(row["workload_fp"], sort_keys=True),
                 json.dumps(row["hardware_fp"], sort_keys=True), row["sampler"],
                 row["objective"], int(row["measured"]), int(row["trials_to_best"]),
                 row["best"], row["recorded_at"]))

    def searches(self) -> list[dict[str, Any]]:
        """Every recorded search, oldest first, fingerprints decoded."""
        cursor = self._db.execute("SELECT * FROM searches ORDER BY recorded_at, search_id")
        names = [c[0] for c in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor]
        for row in rows:
            row["workload_fp"], row["hardware_fp"] = (json.loads(row["workload_fp"]),
                                                      json.loads(row["hardware_fp"]))
        return rows

    def stats(self) -> dict[str, Any]:
        """Counts of trials, (workload, hardware) pairs and trials per source."""
        pairs = self._db.execute("SELECT COUNT(*) FROM (SELECT DISTINCT workload_hash, "
                                 "hardware_hash FROM knowledge)").fetchone()[0]
        sources = dict(self._db.execute(
            "SELECT source, COUNT(*) FROM knowledge GROUP BY source ORDER BY source"))
        samplers = dict(self._db.execute(
            "SELECT sampler, COUNT(*) FROM searches GROUP BY sampler ORDER BY sampler"))
        return {"path": str(self.path), "trials": self._count(), "pairs": pairs,
                "sources": sources, "searches": samplers}


def _row(result: TrialResult, workload_fp: dict[str, Any], source: str) -> tuple[Any, ...]:
    fp = WorkloadFingerprint.from_dict(workload_fp)
    h_fp = result.hardware.fingerprint
    return (result.trial_id, fp.hash, hardware_hash(h_fp), result.workload.name,
            result.workload.sha256, result.hardware.profile, source,
            json.dumps(fp.as_dict(), sort_keys=True), json.dumps(h_fp, sort_keys=True),
            result.model_dump_json(), datetime.now(UTC).isoformat())


def _tvm_entries() -> list[dict[str, Any]]:
    """Every TVM tuning record under PODIUM_HOME, all targets (each names its own)."""
    from tuner.backends.tvm.database import TARGET_FILE, TuningDatabase
    from workloads.paths import cache_dir

    entries = []
    for target_file in sorted(cache_dir("tvm-db").glob(f"*/{TARGET_FILE}")):
        entries += TuningDatabase(json.loads(target_file.read_text())).entries()
    return entries


def _import_tvm_entries(entries: list[dict[str, Any]]) -> int:
    """File tuning records under their own target's database; duplicates are skipped."""
    from tuner.backends.tvm.database import TuningDatabase

    by_target: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for entry in entries:
        record = entry.get("record")
        if isinstance(record, list) and len(record) == 4 and isinstance(record[2], dict):
            key = json.dumps(record[2], sort_keys=True)
            by_target.setdefault(key, (record[2], []))[1].append(entry)
    return sum(TuningDatabase(target).add(group).added for target, group in by_target.values())

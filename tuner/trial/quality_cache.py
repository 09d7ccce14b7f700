"""An artifact's quality on a workload, scored once and read back by its other trials.

Quality depends on the artifact alone (its files), never on the threads, session options or
batch that change its speed. A search runs one artifact under several of those (and its
confirmation re-measures the best ones again), and scoring the evaluation set costs as much
as a timing phase on a model of milliseconds per call. So the measuring worker that scores
an artifact writes the figures to ``PODIUM_HOME/quality/<artifact key>-<workload hash>.json``,
and one whose :class:`~tuner.trial.measure.Protocol` says ``reuse_quality`` reads them back
instead (the record says so: ``measurement.quality_reused`` with when it was scored). The
artifact key already covers the model, the build configuration and the package versions,
and the workload hash the evaluation rows and labels.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workloads.paths import cache_dir

# The figures of a worker's quality stats that belong to the artifact.
KEPT = ("quality", "quality_by_output", "eval_samples")


def _path(artifact_dir: Path, workload_sha256: str) -> Path:
    return cache_dir("quality") / f"{artifact_dir.name}-{workload_sha256[:16]}.json"


def read(artifact_dir: Path, workload_sha256: str) -> dict[str, Any] | None:
    """The stored quality stats, with ``quality_reused``; None when not scored yet."""
    try:
        stored = json.loads(_path(artifact_dir, workload_sha256).read_text())
    except (OSError, ValueError):
        return None
    return {k: stored[k] for k in KEPT if k in stored} | {
        "quality_reused": {"scored_at": stored.get("scored_at")}}


def write(artifact_dir: Path, workload_sha256: str, stats: dict[str, Any]) -> None:
    """Store the quality stats of a fresh scoring (atomically: a reader sees all or none)."""
    path = _path(artifact_dir, workload_sha256)
    record = {k: stats[k] for k in KEPT if k in stats}
    record["scored_at"] = datetime.now(UTC).isoformat()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)

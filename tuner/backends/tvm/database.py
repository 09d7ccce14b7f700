"""A persistent MetaSchedule tuning database, keyed by the full TVM target.

Why not MetaSchedule's ``JSONDatabase``: it stores each workload as a serialized IRModule,
which segfaults with apache-tvm-ffi 0.1.15 (``ToJSONGraph`` on any node with a dtype), and
its two files refer to each other by line number, so two machines' databases cannot simply
be concatenated. Here every line of ``PODIUM_HOME/tvm-db/<target key>/records.jsonl`` is
self-contained::

    {"workload": <structural hash of the task's IRModule>, "task": <name>,
     "tvm": <version>, "budget": <trials the build asked for>, "latency_s": <seconds>,
     "record": <TuningRecord.as_json(): [trace, run_secs, target, args_info]>}

A trace is a list of schedule instructions, plain JSON that serializes with any tvm-ffi.
A later build extracts its tasks again (cheap) and rebuilds an in-memory database: the
live task module is the workload, and each stored trace is replayed onto it. So files merge
with ``cat`` (duplicates are dropped on import), and a record whose target differs from the
folder's is refused, because schedules tuned for one CPU mislead another (tvm#15549).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workloads.paths import cache_dir

if TYPE_CHECKING:
    from collections.abc import Iterable

RECORDS_FILE = "records.jsonl"
TARGET_FILE = "target.json"
# Kept per task and tuning run: the best is what a build applies, the runners-up are
# there for a future search to start from.
KEEP_PER_TASK = 8


@dataclass(frozen=True)
class ImportReport:
    """What an import or append did with each record it was given."""

    added: int = 0
    duplicates: int = 0
    refused: int = 0


def canonical_target(target: Any) -> dict[str, Any]:
    """The target exactly as TVM exports it (kind, mcpu, mattr, mtriple, num-cores, …)."""
    return _plain(target.export())


def target_key(target: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(target, sort_keys=True).encode()).hexdigest()[:16]


def workload_key(mod: Any) -> str:
    """A task's identity: the structural hash of its IRModule, stable across processes."""
    import tvm_ffi

    return f"{tvm_ffi.structural_hash(mod) & (2**64 - 1):016x}"


class TuningDatabase:
    """The tuning records of one TVM target, under ``root/<target key>/``.

    Appends take an exclusive lock, so concurrent builds on one machine do not interleave
    lines; a line that does not parse (a torn copy) is skipped on read.
    """

    def __init__(self, target: dict[str, Any], root: Path | None = None) -> None:
        self.target = target
        self.folder = (root or cache_dir("tvm-db")) / target_key(target)
        self.path = self.folder / RECORDS_FILE

    def entries(self) -> list[dict[str, Any]]:
        """Every stored record of this target."""
        return [entry for entry in _read_lines(self.path) if self._accepts(entry)]

    def add(self, entries: Iterable[dict[str, Any]]) -> ImportReport:
        """Append the new records of this target; refuse the others, skip duplicates."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / TARGET_FILE).write_text(json.dumps(self.target, indent=2, sort_keys=True))
        with open(self.path, "a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            seen = {_identity(entry) for entry in _parse(handle)}
            added, duplicates, refused = [], 0, 0
            for entry in entries:
                if not self._accepts(entry):
                    refused += 1
                elif _identity(entry) in seen:
                    duplicates += 1
                else:
                    seen.add(_identity(entry))
                    added.append(json.dumps(entry, sort_keys=True) + "\n")
            handle.writelines(added)
        return ImportReport(added=len(added), duplicates=duplicates, refused=refused)

    def import_file(self, source: Path) -> ImportReport:
        """Merge records exported elsewhere (another machine's ``records.jsonl``)."""
        return self.add(_read_lines(source))

    def export(self, destination: Path) -> int:
        """Write this target's records to ``destination``; return how many."""
        entries = self.entries()
        destination.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))
        return len(entries)

    def add_tuned(self, database: Any, tasks: list[Any], *, budget: int) -> ImportReport:
        """Store the best records a MetaSchedule run found for ``tasks``."""
        import tvm

        names = {workload_key(task.dispatched[0]): task.task_name for task in tasks}
        found: dict[str, list[dict[str, Any]]] = {}
        for record in database.get_all_tuning_records():
            seconds = [float(s) for s in record.run_secs or []]
            key = workload_key(record.workload.mod)
            if not seconds or not all(map(math.isfinite, seconds)) or key not in names:
                continue
            found.setdefault(key, []).append({
                "workload": key, "task": names[key], "tvm": tvm.__version__, "budget": budget,
                "latency_s": sum(seconds) / len(seconds), "record": _plain(record.as_json())})
        best = [entry for group in found.values()
                for entry in sorted(group, key=lambda e: e["latency_s"])[:KEEP_PER_TASK]]
        return self.add(best)

    def load(self, tasks: list[Any], *, budget: int) -> tuple[Any, list[Any]]:
        """A MetaSchedule database with the best stored schedule of each task.

        Returns the database and the tasks it does not cover: no record tuned with at least
        ``budget`` trials, or none whose trace still replays on the task (another TVM).
        """
        import tvm
        from tvm.s_tir import meta_schedule as ms

        by_workload: dict[str, list[dict[str, Any]]] = {}
        for entry in self.entries():
            if entry["tvm"] == tvm.__version__ and entry["budget"] >= budget:
                by_workload.setdefault(entry["workload"], []).append(entry)
        database, missing = ms.database.MemoryDatabase(), []
        for task in tasks:
            mod = task.dispatched[0]
            candidates = sorted(by_workload.get(workload_key(mod), []),
                                key=lambda e: e["latency_s"])
            if not any(_commit(database, mod, entry["record"]) for entry in candidates):
                missing.append(task)
        return database, missing

    def _accepts(self, entry: dict[str, Any]) -> bool:
        record = entry.get("record")
        return isinstance(record, list) and len(record) == 4 and record[2] == self.target


def _commit(database: Any, mod: Any, record: list[Any]) -> bool:
    """Replay a stored trace onto ``mod`` and commit it; False if it no longer applies."""
    from tvm.s_tir import meta_schedule as ms

    try:
        workload = database.commit_workload(mod)
        database.commit_tuning_record(ms.database.TuningRecord.from_json(record, workload))
    except Exception:  # a trace of another TVM or another module raises TVMError
        return False
    return True


def _identity(entry: dict[str, Any]) -> tuple[str, int, str]:
    return entry["workload"], entry["budget"], json.dumps(entry["record"][0], sort_keys=True)


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as handle:
        return list(_parse(handle))


def _parse(lines: Iterable[str]) -> Iterable[dict[str, Any]]:
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and {"workload", "record", "budget", "tvm"} <= entry.keys():
            yield entry


def _plain(value: Any) -> Any:
    """TVM's JSON objects (ffi Map, Array, IntImm, …) as plain Python for ``json.dumps``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value if not isinstance(value, str) else str(value)
    if hasattr(value, "items"):
        return {str(key): _plain(item) for key, item in value.items()}
    if hasattr(value, "dtype") and hasattr(value, "value"):  # tirx.IntImm / FloatImm
        return value.value
    return [_plain(item) for item in value]

"""What several benchmarks share: a private PODIUM_HOME seeded with the built workloads,
the host they ran on, measuring rows side by side, and writing results as they come.

Benchmarks run as scripts (``python bench/X.py``), so this folder is first on the import
path: no file here may be named like a package the project imports (``tvm``, ``onnx``, …).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any


def seed_home(home: Path) -> None:
    """Copy the built-in workloads already built in the user's home (verified by hash on
    load) into ``home``, so the bench does not rebuild them; nothing is written back."""
    user = Path(os.environ.get("PODIUM_USER_HOME", Path.home() / ".cache" / "podium"))
    if (user / "workloads").is_dir() and not (home / "workloads").exists():
        shutil.copytree(user / "workloads", home / "workloads")


def prepare_home(home: Path, keep_database: bool) -> None:
    """A private home with the built workloads; without ``keep_database``, no tuning records
    or artifacts from an earlier run, so every budget tunes from scratch."""
    seed_home(home)
    if not keep_database:
        shutil.rmtree(home / "tvm-db", ignore_errors=True)
        shutil.rmtree(home / "artifacts", ignore_errors=True)


def host_facts() -> dict[str, Any]:
    """The CPU the numbers come from: its model, cores, the ISA flags Podium decides
    precisions and TVM targets on, and each backend's engine versions."""
    from tuner.backends.registry import backend_class, backend_names
    from tuner.hardware import local_host
    from tuner.hardware.profiles import ISA_FLAGS

    host = local_host()
    return {"cpu_model": host.model, "vendor": host.vendor, "machine": host.machine,
            "usable_cores": host.cores, "cpus": host.cpus,
            "isa": [flag for flag in ISA_FLAGS if flag in host.flags],
            "simulated": host.simulated or None,
            "engines": {name: backend_class(name).versions() for name in backend_names()}}


def print_host(facts: dict[str, Any]) -> None:
    simulated = f" (simulated: {facts['simulated']})" if facts["simulated"] else ""
    print(f"host: {facts['cpu_model']} ({facts['vendor'] or 'unknown vendor'}, "
          f"{facts['machine']}), {facts['usable_cores']} usable of {facts['cpus']} CPUs"
          f"{simulated}")
    print(f"ISA: {' '.join(facts['isa']) or 'none of the flags Podium reads'}")
    engines = "; ".join(f"{name}: " + ", ".join(f"{package} {version}"
                                                  for package, version in versions.items())
                        for name, versions in facts["engines"].items())
    print(f"engines: {engines}", flush=True)


def save_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write every row so far, so an interrupted bench keeps what it measured."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2, default=str))


def measure_rounds(targets: dict[str, tuple[Any, Any]], rounds: int, protocol: Any,
                   **trial_options: Any) -> dict[str, list]:
    """Measure every row (label → (workload, Configuration)) once per round, rounds
    interleaved, each in its own fresh pinned process, so rows compare numbers of one run
    (MEASUREMENT.md rule 8); label → the results of each round."""
    from tuner.trial.run import run_trial

    results: dict[str, list] = {label: [] for label in targets}
    for number in range(rounds):
        for label, (workload, config) in targets.items():
            print(f"[{time.strftime('%H:%M:%S')}] round {number + 1}: {label}", flush=True)
            results[label].append(run_trial(workload, config, protocol=protocol,
                                            **trial_options))
    return results

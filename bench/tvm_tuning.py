"""Is tuned TVM a contender? ORT default fp32 vs TVM at several MetaSchedule budgets.

For each workload, one thread each: the ORT default (the baseline), then TVM tuned with each
budget, every configuration through ``run_trial`` (a cached build, then a fresh pinned
measuring process). ``speedup`` is ORT p50 / config p50 (> 1: TVM wins); ``tune_s`` is the
tuning time the build spent, read from the artifact (0 when the tuning database already had
every kernel). Untuned TVM is left out: 40-80x slower than ORT (TERRAIN.md), and scoring the
evaluation set at that speed takes minutes.

    PODIUM_HOME=/tmp/ph-bench python bench/tvm_tuning.py [--workloads encoder convnet]
        [--budgets 64 256] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import workloads
from tuner.config import Configuration
from tuner.measure import Protocol
from tuner.trial import run_trial

PROTOCOL = Protocol(max_latency_s=10.0)
# A 256-trial tuning of the convnet takes minutes on two cores.
BUILD_TIMEOUT_S = 3600.0


def measure(workload_name: str, budgets: list[int]) -> list[dict]:
    """One row per configuration: ORT first, then TVM by budget."""
    workload = workloads.get(workload_name)
    configs = {"ort": Configuration(threads=1)}
    configs |= {f"tvm-{n}": Configuration(backend="tvm", tvm_tuning_trials=n, threads=1)
                for n in budgets}
    rows = []
    for label, config in configs.items():
        result = run_trial(workload, config, protocol=PROTOCOL, timeout_s=BUILD_TIMEOUT_S)
        artifact = result.artifact
        row = {"workload": workload_name, "config": label, "ok": result.ok,
               "error": result.error, "cache_hit": artifact.get("cache_hit"),
               "tune_s": artifact.get("details", {}).get("tune_s"),
               "tuned_tasks": artifact.get("details", {}).get("tuned_tasks")}
        if result.ok:
            row |= {"p50_ms": result.metrics.latency_p50_ms,
                    "quality_ratio": result.metrics.quality_ratio,
                    "build_s": result.metrics.build_s,
                    "stability": str(result.metrics.stability)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    baseline = rows[0].get("p50_ms")
    for row in rows:
        if baseline and row.get("p50_ms"):
            row["speedup"] = baseline / row["p50_ms"]
    return rows


def show(rows: list[dict]) -> None:
    table = Table(title="TVM tuned vs ORT default fp32, 1 thread (speedup > 1: faster than ORT)")
    for column in ("workload", "config", "p50 ms", "speedup", "quality ratio", "tune s",
                   "build s", "stability / error"):
        table.add_column(column)
    for row in rows:
        def fmt(key: str, spec: str, row: dict = row) -> str:
            return format(row[key], spec) if row.get(key) is not None else "-"

        table.add_row(row["workload"], row["config"], fmt("p50_ms", ".2f"),
                      fmt("speedup", ".2f"), fmt("quality_ratio", ".4f"), fmt("tune_s", ".0f"),
                      fmt("build_s", ".0f"), row.get("stability") or (row["error"] or "")[:60])
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=["encoder", "convnet"])
    parser.add_argument("--budgets", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = [row for name in args.workloads for row in measure(name, args.budgets)]
    show(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

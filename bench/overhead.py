"""Engine overhead per trial, and what an artifact cache hit saves.

1. Overhead: one ``optimize`` run on ``digits`` through the real Ray executor and SQLite
   storage. One-time set-up (Ray start, imports, opening the study, until the first trial
   is submitted) is reported apart from the per-trial engine overhead = (wall after set-up)
   − Σ (build + measure wall time inside the trials): Optuna, Ray dispatch, storage and
   knowledge writes, the driver loop. Target: ≤ 5% of the wall.
2. Cache: the same configuration built cold (empty artifact cache) and again (hit), for a
   configuration with a real build (static int8 with calibration), side by side.

    python bench/overhead.py [--trials 20] [--workload digits]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import workloads
from tuner.hardware import detect_local
from tuner.search.optimize import optimize
from tuner.trial.build import artifact_key, build_artifact
from tuner.trial.config import Configuration
from workloads.paths import cache_dir

SPACE = {"backend": "ort", "batch": [1, 8], "threads": [1, 2]}


def engine_overhead(workload: workloads.Workload, trials: int) -> None:
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=len(os.sched_getaffinity(0)), resources={"hw:local": 1},
             include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray_start = time.perf_counter() - start
    storage = f"sqlite:///{tempfile.mkdtemp(prefix='podium-bench-')}/study.db"
    first_submit: list[float] = []

    def progress(event: dict) -> None:
        if event["event"] == "running" and not first_submit:
            first_submit.append(time.perf_counter())

    start = time.perf_counter()
    result = optimize(workload, ["latency_p90_ms"], ["quality_ratio >= 0.99"], trials=trials,
                      space=SPACE, storage=storage, study="overhead", progress=progress,
                      warm_start=False)  # every trial measured in this run
    end = time.perf_counter()
    setup, wall = first_submit[0] - start, end - first_submit[0]
    ray.shutdown()
    unique = {r.trial_id: r for r in [*result.results, result.baseline] if r is not None}
    records = list(unique.values())
    inside = sum(r.timings.get("build_wall_s", 0) + r.timings.get("measure_wall_s", 0)
                 for r in records)
    overhead = wall - inside
    print(f"engine overhead: {len(records)} trials (incl. baseline) in {wall:.1f} s wall after "
          f"set-up; build+measure {inside:.1f} s; overhead {overhead:.1f} s = "
          f"{overhead / wall:.1%} of the wall, {overhead / len(records) * 1000:.0f} ms per trial. "
          f"One-time: Ray start {ray_start:.1f} s, set-up to first trial {setup:.1f} s")


def cache_hit(workload: workloads.Workload) -> None:
    config = Configuration(variant=workload.reference, precision="int8-static",
                           calibration="entropy").normalized()
    profile = detect_local()
    target = cache_dir("artifacts") / artifact_key(workload, config, profile)
    shutil.rmtree(target, ignore_errors=True)
    start = time.perf_counter()
    build_artifact(workload, config, profile)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    _, hit = build_artifact(workload, config, profile)
    warm = time.perf_counter() - start
    assert hit
    print(f"artifact cache ({workload.name}, int8-static entropy): cold build {cold:.2f} s, "
          f"cache hit {warm * 1000:.1f} ms → {cold / warm:.0f}× faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--workload", default="digits")
    args = parser.parse_args()
    workload = workloads.get(args.workload)
    engine_overhead(workload, args.trials)
    cache_hit(workload)


if __name__ == "__main__":
    main()

"""Side-by-side trial benchmark: ORT default vs a spread of configurations, per workload.

For each built-in workload, every configuration is built first (cached), then measured in
``--rounds`` interleaved rounds, each measurement in its own fresh pinned process, so the
ratios compare numbers taken in the same run (MEASUREMENT.md rule 8). Ratios are
``baseline / config`` for latency (> 1 = faster than the ORT default) and
``quality_ratio`` against the fp32 reference. The winner is the fastest (p50) stable or
noisy configuration with quality_ratio ≥ 0.99.

    python bench/trials.py [--workloads digits convnet encoder] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import workloads
from tuner.trial.config import Configuration
from tuner.trial.measure import Protocol
from tuner.trial.results import TrialResult
from tuner.trial.run import run_trial

# Caps the latency phase for very slow artifacts (untuned TVM); p99 is then not reported.
PROTOCOL = Protocol(max_latency_s=15.0)
QUALITY_FLOOR = 0.99
# Untuned TVM runs the convnet at ~0.8 s per image: scoring 450 images would take 6 minutes.
UNTUNED_TVM_TOO_SLOW = {"convnet"}


def spread(workload: workloads.Workload, cores: int) -> dict[str, dict]:
    """The configurations compared; the first is the ORT default (the baseline)."""
    ref = workload.reference
    configs = {
        "ort-default": {"threads": cores},
        "fp32 1t": {"threads": 1},
        "fp32 1t no-opt": {"threads": 1, "ort_graph_optimization": "disable"},
        "fp16 1t": {"threads": 1, "precision": "fp16"},
        "int8-dyn 1t": {"threads": 1, "precision": "int8-dynamic"},
        "int8-static 1t": {"threads": 1, "precision": "int8-static"},
        "int8-static pc 1t": {"threads": 1, "precision": "int8-static", "per_channel": True},
        f"int8-static {cores}t": {"threads": cores, "precision": "int8-static"},
        "tvm tuned-64 1t": {"threads": 1, "backend": "tvm", "tvm_tuning_trials": 64},
    }
    if workload.name not in UNTUNED_TVM_TOO_SLOW:
        configs["tvm untuned 1t"] = {"threads": 1, "backend": "tvm"}
    for name in workload.variants:
        if name != ref:
            configs[f"{name} fp32 1t"] = {"threads": 1, "variant": name}
    return configs


def measure(workload: workloads.Workload, configs: dict[str, dict],
            rounds: int) -> dict[str, list[TrialResult]]:
    results: dict[str, list[TrialResult]] = {name: [] for name in configs}
    for _ in range(rounds):
        for name, values in configs.items():
            results[name].append(run_trial(workload, Configuration.parse(values),
                                           protocol=PROTOCOL))
    return results


def summarise(workload: workloads.Workload, results: dict[str, list[TrialResult]],
              console: Console) -> dict:
    def p(name: str, metric: str) -> float | None:
        values = [r.metric(metric) for r in results[name] if r.ok and r.metric(metric)]
        return statistics.median(values) if values else None

    base50, base90 = p("ort-default", "latency_p50_ms"), p("ort-default", "latency_p90_ms")
    table = Table(title=f"{workload.name} ({workload.metric}, reference "
                        f"{workload.reference}: {workload.reference_quality:.4f})")
    for column in ("configuration", "p50 ms", "p90 ms", "speedup p50", "speedup p90",
                   "quality_ratio", "stability", "size KB"):
        table.add_column(column, justify="right")
    rows, best = [], None
    for name, trials in results.items():
        last = trials[-1]
        if not last.ok:
            table.add_row(name, "failed", "", "", "", "", "", last.error[:60])
            rows.append({"config": name, "error": last.error})
            continue
        p50, p90 = p(name, "latency_p50_ms"), p(name, "latency_p90_ms")
        quality = last.metrics.quality_ratio
        speed50 = base50 / p50 if base50 and p50 else None
        speed90 = base90 / p90 if base90 and p90 else None
        stability = ",".join(sorted({str(t.metrics.stability) for t in trials if t.ok}))
        row = {"config": name, "p50_ms": p50, "p90_ms": p90, "speedup_p50": speed50,
               "speedup_p90": speed90, "quality_ratio": quality, "stability": stability,
               "configuration": last.config}
        rows.append(row)
        if (quality or 0) >= QUALITY_FLOOR and "unstable" not in stability and speed50 and (
                best is None or speed50 > best["speedup_p50"]):
            best = row
        table.add_row(name, f"{p50:.4g}", f"{p90:.4g}" if p90 else "—",
                      f"{speed50:.2f}×" if speed50 else "—", f"{speed90:.2f}×" if speed90 else "—",
                      f"{quality:.4f}", stability,
                      f"{last.metrics.model_size_bytes / 1024:.0f}")
    console.print(table)
    if best:
        console.print(f"[bold]winner at quality_ratio ≥ {QUALITY_FLOOR}:[/bold] {best['config']} "
                      f"— {best['speedup_p50']:.2f}× the ORT default (p50)")
    return {"workload": workload.name, "sha256": workload.sha256, "rows": rows, "best": best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=workloads.names())
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/trials.json"))
    args = parser.parse_args()
    console = Console(width=160)
    cores = len(os.sched_getaffinity(0))
    report = []
    for name in args.workloads:
        workload = workloads.get(name)
        with console.status(f"{name}: measuring {args.rounds} interleaved rounds …"):
            results = measure(workload, spread(workload, cores), args.rounds)
        report.append(summarise(workload, results, console))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    console.print(f"full results: {args.out}")


if __name__ == "__main__":
    main()

"""Is tuned TVM a contender? ORT and TVM side by side on the built-in workloads.

Rows per workload, batch 1, every one through ``tuner.trial.run.run_trial``:

- ``ort default``: fp32, threads = every core (what ONNX Runtime does by default);
- ``ort fp32 1t``: fp32 on one thread, the like-for-like baseline for TVM (fp32, 1 thread);
- ``ort …``: the strong ORT configurations known for the workload (``ORT_CANDIDATES``:
  int8 on one and on every core; the fastest of all ORT rows is "best ort", so the bar
  TVM has to clear is the best of several, never a single pick; a row below quality ratio
  0.99 does not count);
- ``tvm untuned``: TVM's default pipeline (no schedules);
- ``tvm N``: TVM tuned with MetaSchedule at each ``--budgets`` trial budget, one thread
  (tuning itself times candidates on every core: threads are not part of a TVM build);
- ``tvm N 2t``: the largest budget's artifact on every core, against the ORT default.

Every artifact is built first (tuning happens there; ``tune_s`` and ``build_s`` come from
the artifact), then the rows are measured in ``--rounds`` interleaved rounds, each
measurement in its own fresh pinned process, and the median p50 is reported, so ratios
compare numbers of one run (MEASUREMENT.md rule 8). A ratio column is baseline p50 / row
p50, above 1 the row is faster, against the ORT default, the faster of the two fp32 ORT
rows, and the fastest ORT row. "Within 1.2× of the best ORT" means ``÷ best ort`` ≥ 0.83.

Untuned TVM runs the convnet at ~0.8 s per image, so scoring its 450 evaluation images
would take minutes: when a workload has more than ``--untuned-eval-rows`` evaluation rows,
the untuned row runs on a copy of the workload with only the first rows (a user workload
made with ``workloads.from_files``; its quality ratio is over those rows, and the table
says so). The Protocol has no evaluation cap of its own.

Everything lives under a private PODIUM_HOME (``--home``, default
``bench/results/tvm-home``), seeded with the built-in workloads of the user's home; the
TVM tuning database starts empty unless ``--keep-database``.

    python bench/tvm_vs_ort.py [--workloads digits encoder convnet] [--budgets 64 256 1000]
                               [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import measure_rounds, prepare_home, save_rows  # noqa: E402

ORT_CANDIDATES: dict[str, dict[str, dict[str, Any]]] = {
    "convnet": {"ort int8 static pc 1t": {"precision": "int8-static", "per_channel": True,
                                          "threads": 1},
                "ort int8 static pc 2t": {"precision": "int8-static", "per_channel": True,
                                          "threads": 2}},
    "encoder": {"ort int8 dynamic 1t": {"precision": "int8-dynamic", "threads": 1},
                "ort int8 static 2t": {"precision": "int8-static", "threads": 2}},
    "digits": {"ort int8 static 1t": {"precision": "int8-static", "threads": 1},
               "ort int8 dynamic 1t": {"precision": "int8-dynamic", "threads": 1}},
}
# Tuning 1,000 trials of the convnet takes a long while on two cores.
BUILD_TIMEOUT_S = 3 * 3600.0
MEASURE_TIMEOUT_S = 900.0
QUALITY_FLOOR = 0.99  # the quality ratio an ORT row needs to count as "best ort"


def configurations(name: str, budgets: list[int], cores: int) -> dict[str, dict[str, Any]]:
    configs: dict[str, dict[str, Any]] = {
        "ort default": {"threads": cores}, "ort fp32 1t": {"threads": 1},
        **{label: values for label, values in ORT_CANDIDATES.get(name, {}).items()
           if values["threads"] <= cores},
        "tvm untuned": {"backend": "tvm", "tvm_tuning_trials": 0, "threads": 1}}
    configs |= {f"tvm {n}": {"backend": "tvm", "tvm_tuning_trials": n, "threads": 1}
                for n in budgets}
    if budgets and cores > 1:  # the same artifact (tuned on every core) on every core
        configs[f"tvm {max(budgets)} {cores}t"] = {
            "backend": "tvm", "tvm_tuning_trials": max(budgets), "threads": cores}
    return configs


def subset(workload, rows: int, folder: Path):
    """``workload``'s reference model with only its first ``rows`` evaluation rows."""
    import workloads

    arrays = {key: value[:rows] for key, value in workload.eval_inputs.items()}
    if workload.eval_labels is not None:
        arrays["labels"] = workload.eval_labels[:rows]
    data = folder / f"{workload.name}-first-{rows}.npz"
    np.savez(data, **arrays)
    return workloads.from_files(workload.model_path(), data,
                                name=f"{workload.name}-first-{rows}")


def build_all(targets: dict[str, tuple[Any, Any]]) -> dict[str, dict[str, Any]]:
    """Build (and tune) every artifact once; what each build cost, or why it failed."""
    from tuner.errors import TrialFailed
    from tuner.trial.build import build_artifact
    from tuner.trial.run import validate

    built = {}
    for label, (workload, config) in targets.items():
        print(f"[{time.strftime('%H:%M:%S')}] building {workload.name} / {label}", flush=True)
        config, profile = validate(workload, config)
        start = time.perf_counter()
        try:
            artifact, _ = build_artifact(workload, config, profile, timeout_s=BUILD_TIMEOUT_S)
        except TrialFailed as exc:
            built[label] = {"error": str(exc)}
            print(f"    failed: {exc}", flush=True)
            continue
        details = artifact.details
        built[label] = {"build_s": artifact.build_s, "wall_s": time.perf_counter() - start,
                        "tune_s": details.get("tune_s"),
                        "tasks": details.get("tuning_tasks"),
                        "search": details.get("tuning_search"),
                        "fallback": details.get("tuning_fallback")}
        print(f"    {json.dumps(built[label])}", flush=True)
    return built


def summarise(name: str, labels: dict[str, str], built: dict[str, dict],
              measured: dict[str, list]) -> list[dict[str, Any]]:
    def p50(label: str) -> float | None:
        values = [t.metric("latency_p50_ms") for t in measured.get(label, []) if t.ok]
        values = [v for v in values if v]
        return statistics.median(values) if values else None

    def accurate(label: str) -> bool:
        return all((t.metrics.quality_ratio or 0.0) >= QUALITY_FLOOR
                   for t in measured[label] if t.ok)

    # An int8 row that loses accuracy is no bar to clear: it would not be a valid answer.
    ort = {label: p50(label) for label in measured if label.startswith("ort ")
           and accurate(label)}
    fp32 = [ort[label] for label in ("ort default", "ort fp32 1t") if ort.get(label)]
    baselines = {"ort default": ort["ort default"], "best ort fp32": min(fp32, default=None),
                 "best ort": min([v for v in ort.values() if v], default=None)}
    rows = []
    for label, trials in measured.items():
        row: dict[str, Any] = {"workload": name, "row": labels[label], **built.get(label, {})}
        failed = next((t for t in trials if not t.ok), None)
        if failed is not None or "error" in row:
            rows.append(row | {"error": row.get("error") or failed.error})
            continue
        latency = p50(label)
        row |= {"p50_ms": latency, "quality_ratio": trials[-1].metrics.quality_ratio,
                "stability": ",".join(sorted({str(t.metrics.stability) for t in trials}))}
        row |= {f"vs {base}": (value / latency if value and latency else None)
                for base, value in baselines.items()}
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="TVM vs ORT, batch 1 (ratio = baseline p50 / row p50: > 1 is faster; "
                        "within 1.2× of the best ORT = ÷ best ort ≥ 0.83)")
    for column in ("workload", "row", "p50 ms", "÷ ort default", "÷ best ort fp32",
                   "÷ best ort", "quality ratio", "tune s", "build s", "stability", "search"):
        table.add_column(column, overflow="fold")

    def number(row: dict[str, Any], key: str, spec: str) -> str:
        value = row.get(key)
        return "—" if value is None else format(value, spec)

    for row in rows:
        if "error" in row:
            table.add_row(row["workload"], row["row"], "failed", *[""] * 7, row["error"][:90])
            continue
        table.add_row(row["workload"], row["row"], number(row, "p50_ms", ".4g"),
                      number(row, "vs ort default", ".3f"), number(row, "vs best ort fp32", ".3f"),
                      number(row, "vs best ort", ".3f"), number(row, "quality_ratio", ".4f"),
                      number(row, "tune_s", ".0f"), number(row, "build_s", ".0f"),
                      row["stability"], row.get("search") or "")
    Console(width=220).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=["digits", "encoder", "convnet"])
    parser.add_argument("--budgets", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--untuned-eval-rows", type=int, default=40)
    parser.add_argument("--keep-database", action="store_true",
                        help="reuse the tuning database and artifacts of an earlier run")
    parser.add_argument("--home", type=Path, default=ROOT / "bench/results/tvm-home")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/tvm.json")
    args = parser.parse_args()
    args.home.mkdir(parents=True, exist_ok=True)
    prepare_home(args.home, args.keep_database)
    os.environ["PODIUM_HOME"] = str(args.home.resolve())

    import workloads
    from tuner.trial.config import Configuration
    from tuner.trial.measure import Protocol

    protocol = Protocol(max_latency_s=15.0)
    cores = len(os.sched_getaffinity(0))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="podium-tvm-bench-") as tmp:
        for name in args.workloads:
            workload = workloads.get(name)
            targets, labels = {}, {}
            for label, values in configurations(name, args.budgets, cores).items():
                target, labels[label] = workload, label
                if label == "tvm untuned" and workload.n_eval > args.untuned_eval_rows:
                    target = subset(workload, args.untuned_eval_rows, Path(tmp))
                    labels[label] = f"tvm untuned ({target.n_eval} eval rows)"
                targets[label] = (target, Configuration.parse(values))
            built = build_all(targets)
            measured = measure_rounds({k: v for k, v in targets.items()
                                       if "error" not in built[k]}, args.rounds, protocol,
                                      timeout_s=MEASURE_TIMEOUT_S)
            measured |= {k: [] for k in targets if "error" in built[k]}
            rows += summarise(name, labels, built, measured)
            save_rows(args.out, rows)
    print_table(rows)
    print(f"full results: {args.out}")


if __name__ == "__main__":
    main()

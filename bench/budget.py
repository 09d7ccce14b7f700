"""Where does a search's budget go? The same budget with the staged search and without it.

For each workload (the built-ins, and ``user-convnet`` and ``user-classifier``, a small conv
classifier and a 3.3 MB sensor classifier with a one-hot path built here as a user's
``--model/--data`` would be, see ``bench/backends.py``), the same latency search —
``latency_p90_ms`` under ``quality_ratio >= 0.99``, ``--trials`` trials, cold (no
knowledge store, no warm start) — runs in two modes, one after the other:

- ``before``: how searches ran before the staged search: the old default space (batches 1,
  8 and 32 whatever the objective, TVM in it untuned), every suggestion built and timed in
  full (``staged=False``: no quality gate, no pruning, no answers from dead artifacts);
- ``after``: today's search: the space fit to the request, quality scored before timing,
  dominated timings pruned, dead artifacts answered from their record.

Both end with the same confirmation (the best 3 and the baseline re-measured side by side,
3 interleaved rounds), so "best" is a confirmed speed-up over the ORT default in both.

After the ``after`` search (outside its wall time), a reference search of the same space
with ``--reference-trials`` trials (default 3× the budget, another seed, in the same home,
so the artifacts it shares with the first are cache hits) stands for "the best in the
space". Then the ORT default, the peer's default (OpenVINO, every core), the search's best
and the reference's best are measured side by side in 3 interleaved rounds, so the line
says how the answer compares with what a user would try instead and how far it is from
the best the longer search found (``gap``: p90 of the search's best / p90 of the better of
the two bests; issue 24 asks for ≤ 1.10).
Each run is a child process with its own fresh PODIUM_HOME (no artifact built by one mode
is a cache hit for the other) and its own local Ray. Reported per run: wall time (search
and confirmation), trials measured, trials wasted (failed + pruned + infeasible + unstable,
and the seconds they took), the confirmed speed-up and the winning configuration.

    python bench/budget.py [--workloads digits convnet encoder user-convnet user-classifier]
                           [--trials 20] [--reference-trials 60] [--modes before after]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import host_facts, print_host, save_rows, seed_home  # noqa: E402

OBJECTIVE, CONSTRAINT = "latency_p90_ms", "quality_ratio >= 0.99"
MODES = ("before", "after")
# The default space before it was fit to the request: every batch, TVM untuned.
BEFORE_SPACE = {"batch": [1, 8, 32], "backend": ["ort", "openvino", "tvm"],
                "tvm_tuning_trials": 0}
WASTED = ("failed", "pruned", "infeasible", "unstable")
ORT, PEER, BEST = "ort default", "openvino default (peer)", "podium best"
REFERENCE = "reference best"


def one_run(workload_name: str, mode: str, trials: int, seed: int,
            timeout_s: float | None, reference_trials: int = 0) -> dict[str, Any]:
    """The search of one mode on one workload, in this process (the child)."""
    from bench.backends import load
    from tuner.search.optimize import optimize
    from tuner.search.study import MEMORY

    workload, _ = load(workload_name, Path(os.environ["PODIUM_HOME"]) / "user-models")
    before = mode == "before"
    start = time.perf_counter()
    result = optimize(workload, [OBJECTIVE], [CONSTRAINT], trials=trials, seed=seed,
                      space=BEFORE_SPACE if before else None, staged=not before,
                      prune_factor=None if before else 3.0, storage=MEMORY,
                      study=f"{workload_name}-{mode}", warm_start=False,
                      timeout_s=timeout_s)
    wall = time.perf_counter() - start
    reference = None
    if not before and reference_trials:
        reference = optimize(workload, [OBJECTIVE], [CONSTRAINT], trials=reference_trials,
                             seed=seed + 1, storage=MEMORY, study=f"{workload_name}-reference",
                             warm_start=False, confirm_top=0).best
    side = side_by_side(workload, result, reference) if not before else {}
    groups = result.time_by_outcome
    confirmation = result.confirmation or {}
    best = result.best
    return {
        "workload": workload_name, "mode": mode, "trials": result.n_trials, "wall_s": wall,
        "timed_out": timeout_s is not None and result.n_trials < trials,
        "wasted_trials": sum(g["trials"] for g in groups if g["outcome"] in WASTED),
        "wasted_s": sum(g["seconds"] for g in groups if g["outcome"] in WASTED),
        "trial_s": sum(g["seconds"] for g in groups),
        "time_by_outcome": groups,
        "speedup": confirmation.get("speedup"),
        "confirmed": confirmation.get("best_trial_id") is not None,
        "best": best.config if best is not None else None,
        "reference_trials": reference_trials if reference is not None else 0,
        "reference_best": reference.config if reference is not None else None,
        "side_by_side_p90_ms": side}


def side_by_side(workload: Any, result: Any, reference: Any) -> dict[str, float | None]:
    """After the search: the ORT default, the peer's default (OpenVINO, every core), the
    search's best and the reference search's best, re-measured in 3 interleaved rounds
    (median p90 of each; None where every round was unstable or failed)."""
    import statistics

    from bench.common import measure_rounds
    from tuner.trial.config import Configuration
    from tuner.trial.measure import Protocol

    cores = result.baseline.config["threads"] if result.baseline else 1
    rows = {ORT: Configuration(variant=workload.reference, threads=cores),
            PEER: Configuration(variant=workload.reference, backend="openvino", threads=cores)}
    if result.best is not None:
        rows[BEST] = Configuration.parse(result.best.config)
    if reference is not None:
        rows[REFERENCE] = Configuration.parse(reference.config)
    measured = measure_rounds({k: (workload, c) for k, c in rows.items()}, 3, Protocol())
    side = {}
    for label, runs in measured.items():
        values = [r.metric("latency_p90_ms") for r in runs
                  if r.ok and r.instability() is None and r.metric("latency_p90_ms")]
        side[label] = statistics.median(values) if values else None
    return side


def child(workload_name: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one mode in a child process with a fresh home; its result row."""
    with tempfile.TemporaryDirectory(prefix=f"podium-budget-{mode}-") as home:
        seed_home(Path(home))
        out = Path(home) / "row.json"
        command = [sys.executable, __file__, "--child", workload_name, mode, str(out),
                   "--trials", str(args.trials), "--seed", str(args.seed),
                   "--reference-trials", str(args.reference_trials)]
        if args.timeout_s:
            command += ["--timeout-s", str(args.timeout_s)]
        env = os.environ | {"PODIUM_HOME": home}
        env.pop("PODIUM_CONFIRM_TOP", None)
        done = subprocess.run(command, env=env, check=False)
        if done.returncode != 0 or not out.exists():
            return {"workload": workload_name, "mode": mode,
                    "error": f"the run exited with status {done.returncode}"}
        return json.loads(out.read_text())


def describe(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"{row['workload']:<13} {row['mode']:<7} {row['error']}"
    speedup = f"{row['speedup']:.2f}×" if row.get("speedup") else "—"
    best = row["best"] or {}
    config = " ".join(str(best.get(k)) for k in ("backend", "precision", "threads", "batch")
                      if best.get(k) is not None) or "none feasible"
    side = row.get("side_by_side_p90_ms") or {}
    peer = ""
    if side.get(ORT) and side.get(PEER):
        peer = f"  peer default {side[ORT] / side[PEER]:.2f}× of ORT default"
        if side.get(BEST):
            peer += f", best {side[PEER] / side[BEST]:.2f}× of the peer"
    if side.get(BEST) and side.get(REFERENCE):
        peer += (f"  gap to the {row['reference_trials']}-trial reference "
                 f"{side[BEST] / min(side[BEST], side[REFERENCE]):.2f}")
    return (f"{row['workload']:<13} {row['mode']:<7} {row['wall_s']:7.0f} s  "
            f"{row['trials']:3d} trials  {row['wasted_trials']:3d} wasted "
            f"({row['wasted_s']:5.0f} s)  best {speedup:>6}  {config}{peer}"
            + ("  [stopped at --timeout-s]" if row.get("timed_out") else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+",
                        default=["digits", "convnet", "encoder", "user-convnet",
                                 "user-classifier"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-trials", type=int, default=None,
                        help="trials of the reference search after `after` (default 3× "
                             "--trials; 0: none)")
    parser.add_argument("--timeout-s", type=float, default=None,
                        help="stop submitting trials after this long (a run cut short says so)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "budget.json")
    parser.add_argument("--child", nargs=3, metavar=("WORKLOAD", "MODE", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_trials is None:
        args.reference_trials = 3 * args.trials
    if args.child:
        name, mode, out = args.child
        Path(out).write_text(json.dumps(one_run(name, mode, args.trials, args.seed,
                                                args.timeout_s, args.reference_trials),
                                        default=str))
        return
    host = host_facts()
    print_host(host)
    print(f"{args.trials}-trial latency search ({OBJECTIVE} under {CONSTRAINT}), cold; "
          f"best = confirmed speed-up over the ORT default")
    rows = []
    for name in args.workloads:
        for mode in args.modes:
            row = child(name, mode, args) | {"host": host["cpu_model"], "isa": host["isa"]}
            rows.append(row)
            save_rows(args.out, rows)
            print(describe(row), flush=True)


if __name__ == "__main__":
    main()

"""How many trials each sampler needs to come within 5% of the constrained optimum.

1. Measure the full grid of a workload's (restricted) space once, through the real trial
   path, and cache the table with a description of the machine (``--remeasure`` redoes it).
2. Replay every sampler over ``--seeds`` seeds against that table with the real search
   loop (:func:`tuner.optimize` with a :class:`~tuner.search.replay.TableExecutor`): same space,
   same enqueued defaults, same constraint handling; only the measurement is a lookup.
3. Print, per sampler, the trials needed (median and range) to reach a feasible
   configuration within 5% of the best feasible value in the grid, as a share of the grid,
   and the ratio to random search.

    python bench/search_efficiency.py [--workload digits] [--seeds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import workloads
from tuner.hardware import detect_local, fingerprint
from tuner.search.optimize import optimize
from tuner.search.replay import TableExecutor
from tuner.search.space import default_space
from tuner.search.study import MEMORY
from tuner.trial.config import Configuration
from tuner.trial.constraints import feasible, parse_constraints
from tuner.trial.results import TrialResult
from tuner.trial.run import run_trial

OBJECTIVE = "latency_p90_ms"
CONSTRAINTS = ["quality_ratio >= 0.99"]
SPACES = {
    "digits": {"backend": "ort", "batch": [1, 8], "threads": [1, 2],
               "ort_graph_optimization": ["basic", "all"]},
    "convnet": {"backend": "ort", "batch": [1], "threads": [1, 2],
                "ort_graph_optimization": ["basic", "all"]},
    "encoder": {"backend": "ort", "batch": [1], "threads": [1, 2],
                "ort_graph_optimization": ["basic", "all"]},
}
SAMPLERS = ("auto", "nsga2", "random")
WITHIN = 1.05


def measure_grid(workload: workloads.Workload, space: dict, path: Path, console: Console) -> dict:
    profile = detect_local()
    configs = default_space(workload.variants, hardware=["local"],
                            cores=profile.cores).restrict(space).configurations()
    table: dict[str, dict] = {}
    if path.exists():
        # Keyed again by today's digests: a configuration key added since (with its default,
        # which is what was measured) changes every digest but not what ran.
        for raw in json.loads(path.read_text())["results"].values():
            config = Configuration.parse(raw["config"]).normalized()
            table[config.digest()] = raw | {"config": config.as_dict(),
                                            "config_digest": config.digest()}
    todo = [c for c in configs if c.digest() not in table]
    with console.status("") as status:
        for index, config in enumerate(todo, 1):
            status.update(f"measuring grid point {index}/{len(todo)}: {config.digest()}")
            table[config.digest()] = run_trial(workload, config).model_dump(mode="json")
            path.write_text(json.dumps({"machine": fingerprint(profile),
                                        "workload": workload.sha256, "space": space,
                                        "results": table}))
    return {d: table[d] for d in (c.digest() for c in configs)}


def trials_to_reach(order: list[str], table: dict[str, TrialResult], target: float) -> int:
    constraints = parse_constraints(CONSTRAINTS)
    for count, digest in enumerate(order, 1):
        result = table.get(digest)
        if result and feasible([result], constraints) and result.metric(OBJECTIVE) <= target:
            return count
    return len(order) + 1  # never reached within the budget


def replay(workload: workloads.Workload, space: dict, table: dict[str, TrialResult],
           sampler: str, seed: int, *, defaults: bool) -> list[str]:
    executor = TableExecutor(table, profiles={"local": detect_local().cores})
    optimize(workload, [OBJECTIVE], CONSTRAINTS, trials=len(table), space=space,
             sampler=sampler, seed=seed, study=f"replay-{sampler}-{seed}", storage=MEMORY,
             executor=executor, defaults=defaults)
    return executor.order[1:]  # the baseline is measured outside the sampler's choices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="digits", choices=sorted(SPACES))
    parser.add_argument("--seeds", type=int, default=7)
    parser.add_argument("--remeasure", action="store_true")
    args = parser.parse_args()
    console = Console(width=160)
    workload = workloads.get(args.workload)
    space = SPACES[args.workload]
    path = Path("bench/results") / f"grid-{args.workload}-{workload.sha256[:12]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if args.remeasure and path.exists():
        path.unlink()
    raw = measure_grid(workload, space, path, console)
    table = {d: TrialResult.model_validate(r) for d, r in raw.items()}
    good = feasible(list(table.values()), parse_constraints(CONSTRAINTS))
    optimum = min(r.metric(OBJECTIVE) for r in good)
    target = optimum * WITHIN
    console.print(f"{args.workload}: grid of {len(table)} configurations, {len(good)} feasible; "
                  f"optimum {OBJECTIVE} = {optimum:.4g} ms, target ≤ {target:.4g} ms")
    for defaults in (True, False):
        summary = {}
        for sampler in SAMPLERS:
            counts = [trials_to_reach(replay(workload, space, table, sampler, seed,
                                             defaults=defaults), table, target)
                      for seed in range(args.seeds)]
            summary[sampler] = counts
        random_median = statistics.median(summary["random"])
        how = "with the enqueued defaults" if defaults else "samplers alone (no defaults)"
        out = Table(title=f"trials to come within {WITHIN - 1:.0%} of the constrained optimum, "
                          f"{how} ({args.seeds} seeds, grid {len(table)})")
        for column in ("sampler", "median", "min–max", "share of grid", "vs random"):
            out.add_column(column, justify="right")
        for sampler, counts in summary.items():
            median = statistics.median(counts)
            out.add_row(sampler, f"{median:g}", f"{min(counts)}–{max(counts)}",
                        f"{median / len(table):.0%}", f"{random_median / median:.2f}×")
        console.print(out)


if __name__ == "__main__":
    main()

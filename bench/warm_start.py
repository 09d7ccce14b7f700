"""How many measured trials a warm-started search saves over a cold one (issue 7).

Replays the measured digits grid (``bench/results/grid-digits-*.json``, made by
``bench/search_efficiency.py``) through the real search loop, with ``defaults=False`` on
both sides so that only the warm start differs, and counts the measured trials needed to
reach a feasible configuration within 5% of the grid's constrained optimum. A result
already known to the study (a prior) that is within 5% counts as reached after 0 trials.

Knowledge comes from a *different but similar* source, never from the search itself:

* ``other machine``: the grid as if measured on ``aws-c7i.large`` with every latency
  multiplied by log-normal noise (σ = ``--noise``): its best configurations are
  transferred and enqueued, and measured here;
* ``past study``: what one earlier, short cold search (other seed, ``--past`` trials)
  measured on this machine: added as priors.

    python bench/warm_start.py [--seeds 5] [--budget 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import workloads
from tuner.api import feasible, optimize
from tuner.config import Configuration
from tuner.constraints import parse_constraints
from tuner.fingerprint import workload_fingerprint
from tuner.hardware import detect_local, fingerprint, load_profile
from tuner.knowledge import KnowledgeStore
from tuner.replay import TableExecutor
from tuner.results import TrialResult
from tuner.search import MEMORY

OBJECTIVE = "latency_p90_ms"
CONSTRAINTS = ["quality_ratio >= 0.99"]
# The grid's space, pinned to the int8 options it was measured with.
SPACE = {"backend": "ort", "batch": [1, 8], "threads": [1, 2],
         "ort_graph_optimization": ["basic", "all"], "int8_keep_fp32": 0, "int8_op_types": "all"}
WITHIN = 1.05


def load_grid(workload: workloads.Workload) -> dict[str, TrialResult]:
    """The measured grid keyed by today's configuration digests, as measured on this host."""
    path = Path("bench/results") / f"grid-{workload.name}-{workload.sha256[:12]}.json"
    here = fingerprint(detect_local())
    table = {}
    for raw in json.loads(path.read_text())["results"].values():
        config = Configuration.parse(raw["config"]).normalized()
        result = TrialResult.model_validate(raw)
        table[config.digest()] = result.model_copy(update={
            "config_digest": config.digest(), "config": config.as_dict(),
            "hardware": result.hardware.model_copy(update={"fingerprint": here})})
    return table


def run(workload: workloads.Workload, table: dict[str, TrialResult], *, seed: int,
        budget: int, store: KnowledgeStore, warm: bool, study: str = "bench") -> list[str]:
    """Replay one search; return the digests it measured, in order."""
    executor = TableExecutor(table, profiles={"local": 2})
    optimize(workload, [OBJECTIVE], CONSTRAINTS, trials=budget, space=SPACE, seed=seed,
             study=study, storage=MEMORY, executor=executor, defaults=False,
             warm_start=warm, knowledge=store)
    return executor.order[1:]  # the baseline is measured outside the search


def trials_to_reach(order: list[str], table: dict[str, TrialResult], target: float, *,
                    priors: list[TrialResult] = ()) -> int:
    constraints = parse_constraints(CONSTRAINTS)
    if any(r.metric(OBJECTIVE) <= target for r in feasible(list(priors), constraints)):
        return 0
    for count, digest in enumerate(order, 1):
        hit = table.get(digest)
        if hit and feasible([hit], constraints) and hit.metric(OBJECTIVE) <= target:
            return count
    return len(order) + 1


def other_machine(table: dict[str, TrialResult], noise: float) -> list[TrialResult]:
    rng = np.random.default_rng(7)
    c7i = fingerprint(load_profile("aws-c7i.large"))
    out = []
    for digest in sorted(table):
        r = table[digest]
        factor = float(rng.lognormal(0.0, noise))
        metrics = r.metrics.model_copy(update={
            k: getattr(r.metrics, k) * factor for k in ("latency_p50_ms", "latency_p90_ms",
                                                       "latency_p99_ms")
            if getattr(r.metrics, k) is not None})
        out.append(r.model_copy(update={
            "trial_id": f"c7i-{r.trial_id}", "metrics": metrics,
            "hardware": r.hardware.model_copy(update={"profile": c7i["profile"],
                                                      "fingerprint": c7i})}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--noise", type=float, default=0.15)
    parser.add_argument("--past", type=int, default=15)
    args = parser.parse_args()
    workload = workloads.get("digits")
    table = load_grid(workload)
    wfp = workload_fingerprint(workload)
    good = feasible(list(table.values()), parse_constraints(CONSTRAINTS))
    target = min(r.metric(OBJECTIVE) for r in good) * WITHIN
    print(f"digits grid: {len(table)} configurations, {len(good)} feasible, "
          f"target {OBJECTIVE} ≤ {target:.4g} ms; budget {args.budget}, seeds {args.seeds}")
    with tempfile.TemporaryDirectory() as tmp:
        knowledge = {"other machine": other_machine(table, args.noise)}
        past_store = KnowledgeStore(Path(tmp) / "past.db")
        run(workload, table, seed=1000, budget=args.past, store=past_store, warm=False,
            study="past")
        past_digests = {r.config_digest for r, _ in past_store.results(
            past_store.nearest(wfp, fingerprint(detect_local()), 1)[0])}
        knowledge["past study"] = [table[d].model_copy(update={"trial_id": f"past-{d}"})
                                   for d in sorted(past_digests)]
        counts: dict[str, list[int]] = {"cold": []}
        for seed in range(args.seeds):
            store = KnowledgeStore(Path(tmp) / f"cold-{seed}.db")
            counts["cold"].append(trials_to_reach(run(workload, table, seed=seed,
                                                      budget=args.budget, store=store,
                                                      warm=False), table, target))
            for name, results in knowledge.items():
                store = KnowledgeStore(Path(tmp) / f"{name}-{seed}.db")
                store.record(results, wfp, f"bench {name}")
                order = run(workload, table, seed=seed, budget=args.budget, store=store,
                            warm=True)
                # Only this machine's own results are facts here; others must be measured.
                here = results if name == "past study" else []
                counts.setdefault(name, []).append(trials_to_reach(order, table, target,
                                                                   priors=here))
    cold = statistics.median(counts["cold"])
    print(f"{'search':<16}{'median':>8}{'min–max':>10}{'cold/warm':>11}   per seed")
    for name, values in counts.items():
        median = statistics.median(values)
        ratio = f"{cold / median:.2f}×" if median else "∞"
        print(f"{name:<16}{median:>8g}{f'{min(values)}–{max(values)}':>10}{ratio:>11}   "
              f"{values}")


if __name__ == "__main__":
    main()

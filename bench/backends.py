"""Which backend wins? ORT default, each backend's best and Podium's best, side by side.

For each built-in workload and four user models built here (ONNX written with
``onnx.helper``, loaded through ``workloads.from_files`` as a user's ``--model/--data``
would be; no labels, so quality is agreement with the fp32 reference):

- ``user-convnet``: a conv classifier, four 3×3 convolutions on 3×32×32 renders of class
  templates with a ridge-fitted head (``bench/quantization.py``'s convnet, no outliers);
- ``user-classifier``: a 3.3 MB sensor classifier of the kind issue 24 was filed on, six
  strided 1-D convolutions and dense layers on x[N, 24, 2048], plus a device id (int64)
  through OneHot → Cast into the hidden layer (``bench/generated.py``'s sensor_classifier);
- ``user-encoder``: a transformer encoder, token ids → one pre-LN self-attention block
  (width 128, 64 tokens) → 8 tags per token (``bench/generated.py``'s gen-attention);
- ``user-sequence``: a sequence tagger, frames x[N, 48, 24] → two 1-D convolutions over
  time → one self-attention block → y[N, 48, 12] (gen-conv-attention);

1. ``tuner.search.optimize.optimize`` searches each backend (``--backends``) on its own, a
   fixed budget of ``--trials`` trials for the lowest ``latency_p90_ms`` under
   ``quality_ratio >= 0.99``, at batch 1, with everything else of the backend's default
   space open. Every search starts cold: an in-memory study, no knowledge store, no warm
   start (Podium's strong ORT defaults are still enqueued first, as in any search; the
   other backends have none). TVM's MetaSchedule budget is fixed by ``--tvm-tuning-trials``;
   its tuning database and the artifact cache start empty unless ``--keep-database``.
2. The rows are then re-measured in ``--rounds`` interleaved rounds, each measurement in
   its own fresh pinned process (MEASUREMENT.md rule 8): ``ort default`` (fp32, threads =
   every core, default options: what ONNX Runtime does out of the box), ``openvino default
   (peer)`` (f32, latency hint, every core, the backend's other defaults: what a user trying
   OpenVINO would run), and ``best <backend>`` for each backend whose search found a
   configuration meeting the constraint ("none feasible" otherwise). ``podium best`` is the
   fastest re-measured best (p90) that still meets the constraint and is not unstable.

Reported: the median p50 and p90 over the rounds, the quality ratio, and the speed-up
against the ORT default as baseline p90 / row p90 (> 1: faster). A configuration that two
rows share is measured once. The host's CPU model, ISA flags and engine versions come
first.

Everything lives under a private PODIUM_HOME (``--home``, default
``bench/results/backends-home``), seeded with the built-in workloads of the user's home.

    python bench/backends.py [--workloads digits convnet encoder user-convnet user-classifier
                              user-encoder user-sequence] [--backends ort tvm openvino] [--trials 8]
                             [--rounds 3] [--tvm-tuning-trials 64]
    python bench/backends.py --smoke      # digits + user-sequence, 2 trials, 1 round, TVM
                                          # untuned, latency phase capped at 2 s
    python bench/backends.py --show bench/results/backends.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import host_facts, measure_rounds, prepare_home, print_host, save_rows  # noqa: E402

QUALITY_FLOOR = 0.99
OBJECTIVE = "latency_p90_ms"
BUILTIN = ("digits", "convnet", "encoder")
SMOKE_WORKLOADS = ["digits", "user-sequence"]
ORT_DEFAULT, PEER_DEFAULT, PODIUM_BEST = "ort default", "openvino default (peer)", "podium best"
# Shown in a configuration's summary even at their default value.
ALWAYS_SHOWN = ("tvm_tuning_trials",)


def _user_convnet(folder: Path):
    import workloads
    from bench.quantization import outlier_convnet

    return workloads.from_files(*outlier_convnet(folder, size=32, outliers=0),
                                name="user-convnet")


def _user_classifier(folder: Path):
    import workloads
    from bench.generated import sensor_classifier

    return workloads.from_files(*sensor_classifier(folder), name="user-classifier")


def _generated(name: str) -> Callable[[Path], Any]:
    def build(folder: Path):
        from bench import generated

        return generated.build(name, folder)

    return build


# name → (what it is, builder writing its files under a folder and returning the workload)
USER_MODELS: dict[str, tuple[str, Callable[[Path], Any]]] = {
    "user-convnet": ("conv classifier: 4 convs on 3×32×32 templates, ridge-fitted head",
                     _user_convnet),
    "user-classifier": ("sensor classifier, 3.3 MB: x[N, 24, 2048] → 6 strided conv1d → "
                        "dense, + device id → OneHot → Cast → dense → 6 classes",
                        _user_classifier),
    "user-encoder": ("transformer encoder: token ids → 1 attention block (width 128, "
                     "64 tokens) → 8 tags per token [N, 64, 8] (gen-attention)",
                     _generated("gen-attention")),
    "user-sequence": ("conv + attention sequence tagger: x[N, 48, 24] → 2 conv1d → "
                      "1 attention block → y[N, 48, 12] (gen-conv-attention)",
                      _generated("gen-conv-attention")),
}


def load(name: str, folder: Path) -> tuple[Any, str]:
    """The workload ``name`` and a line saying what it is."""
    import workloads

    if name in USER_MODELS:
        description, build = USER_MODELS[name]
        (folder / name).mkdir(parents=True, exist_ok=True)
        return build(folder / name), description
    workload = workloads.get(name)
    return workload, f"built-in: {workload.description}"


@contextmanager
def local_ray() -> Iterator[None]:
    """One local Ray for every search of a workload: ``optimize`` joins a Ray already
    running and leaves it up, so the backends' searches do not each pay for its start. It is
    shut down before the re-measurement, which then has the cores to itself."""
    from tuner.search.executor import RayExecutor

    holder = RayExecutor()
    holder.start()
    try:
        yield
    finally:
        holder.stop()


def search(workload, backend: str, args: argparse.Namespace, protocol) -> dict[str, Any]:
    """One backend's cold, fixed-budget search: its best Configuration (None when no trial
    met the constraint) and what the search cost."""
    from tuner.errors import PodiumError
    from tuner.search.optimize import optimize
    from tuner.search.study import MEMORY
    from tuner.trial.config import Configuration

    space: dict[str, Any] = {"backend": backend, "batch": 1}
    if backend == "tvm":
        space["tvm_tuning_trials"] = args.tvm_tuning_trials
    print(f"[{time.strftime('%H:%M:%S')}] {workload.name}: searching {backend}, "
          f"{args.trials} trials", flush=True)
    start = time.perf_counter()
    try:
        result = optimize(workload, [OBJECTIVE], [f"quality_ratio >= {QUALITY_FLOOR}"],
                          trials=args.trials, space=space, storage=MEMORY,
                          study=f"{workload.name}-{backend}", warm_start=False,
                          protocol=protocol, seed=args.seed,
                          trial_timeout_s=args.trial_timeout,
                          confirm_top=0)  # the bench re-measures side by side itself
    except PodiumError as exc:
        print(f"    search failed: {exc}", flush=True)
        return {"error": str(exc), "search_s": time.perf_counter() - start}
    best = Configuration.parse(result.best.config) if result.best is not None else None
    reference = workload.reference
    found: dict[str, Any] = {
        "best": best, "trials": result.n_trials, "feasible": len(result.feasible),
        "search_s": time.perf_counter() - start, "sampler": result.sampler,
        "tried": [tried(r, reference) for r in result.results]}
    # By state: a trial stopped under the quality floor or pruned is not a failure.
    found["states"] = dict(Counter(t["state"] for t in found["tried"]))
    if best is None:
        found["why"] = why_none(result)
    for trial in found["tried"]:
        state = "" if trial["state"] == "complete" else f"{trial['state']}: "
        outcome = trial["error"] or (f"{state}p90 {number(trial['p90_ms'], '.4g')} ms, "
                                     f"quality ratio {number(trial['quality_ratio'], '.4f')}, "
                                     f"{trial['stability']}")
        print(f"    {trial['config']}: {outcome}", flush=True)
    print(f"    {searched(found)}; best: "
          f"{summary(best, reference) if best else found['why']}", flush=True)
    return found


def searched(found: dict[str, Any]) -> str:
    """``8 trials (6 complete, 2 infeasible), 3 feasible, 95 s``."""
    states = ", ".join(f"{n} {state}" for state, n in found["states"].items())
    return (f"{found['trials']} trials ({states}), {found['feasible']} feasible, "
            f"{found['search_s']:.0f} s")


def tried(result, reference: str) -> dict[str, Any]:
    """One trial of a search, as the log and the results file show it."""
    from tuner.trial.config import Configuration

    stability = result.metrics.stability
    return {"config": summary(Configuration.parse(result.config), reference),
            "state": str(result.state), "p90_ms": result.metric("latency_p90_ms"),
            "quality_ratio": result.metrics.quality_ratio,
            "stability": None if stability is None else str(stability),
            "error": result.error[:160] if result.error else None}


def why_none(result) -> str:
    """Why a search found nothing feasible: the nearest measured trial's unmet constraints,
    or else the first trial that did not complete."""
    if result.nearest:
        unmet = result.nearest[0]["unmet"]
        return "none feasible (nearest: " + "; ".join(map(str, unmet)) + ")"
    other = next((r for r in result.results if not r.ok), None)
    if other is not None:
        return f"none feasible (none complete; {other.state}: {(other.error or '')[:120]})"
    return "none feasible (no trial measured)"


def summary(config, reference: str | None = None) -> str:
    """``backend precision threads``, the variant where it is not ``reference``, and every
    option away from its default."""
    from tuner.backends.base import plain
    from tuner.backends.registry import backend_class

    config = config.normalized()
    backend = backend_class(config.backend)
    parts = [config.backend, config.precision.value, f"{config.threads}t"]
    if config.variant not in (None, reference):
        parts.append(f"variant={config.variant}")
    if config.batch != 1:
        parts.append(f"batch {config.batch}")
    for key, value in config.options().items():
        option = backend.option(key)
        if key in ALWAYS_SHOWN or option is None or plain(value) != plain(option.default):
            shown = ",".join(map(str, plain(value))) if isinstance(value, tuple) else plain(value)
            parts.append(f"{key}={shown}")
    return " ".join(parts)


def fixed_rows(backends: list[str], cores: int) -> dict[str, dict[str, Any]]:
    from tuner.backends.registry import backend_names

    rows = {ORT_DEFAULT: {"threads": cores}}
    if "openvino" in backend_names():
        rows[PEER_DEFAULT] = {"backend": "openvino", "threads": cores}
    return rows


def measure(workload, rows: dict[str, Any], rounds: int, protocol,
            timeout_s: float) -> dict[str, list]:
    """Measure each distinct configuration of ``rows`` (label → Configuration) in
    interleaved rounds; label → its results (rows that share a configuration share them)."""
    first: dict[str, str] = {}
    for label, config in rows.items():
        first.setdefault(config.digest(), label)
    measured = measure_rounds({label: (workload, rows[label]) for label in first.values()},
                              rounds, protocol, timeout_s=timeout_s)
    return {label: measured[first[config.digest()]] for label, config in rows.items()}


def number(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def median(results: list, metric: str) -> float | None:
    values = [r.metric(metric) for r in results if r.ok and r.metric(metric)]
    return statistics.median(values) if values else None


def summarise(name: str, description: str, reference: str, host: dict[str, Any],
              rows: dict[str, Any], measured: dict[str, list],
              searches: dict[str, dict[str, Any]], backends: list[str]) -> list[dict[str, Any]]:
    base90 = median(measured.get(ORT_DEFAULT, []), "latency_p90_ms")
    out: list[dict[str, Any]] = []
    for label, config in rows.items():
        results = measured[label]
        row: dict[str, Any] = {"workload": name, "description": description, "row": label,
                               "summary": summary(config, reference),
                               "config": config.as_dict(),
                               "host": host["cpu_model"], "isa": host["isa"]}
        backend = label.removeprefix("best ")
        if backend in searches:
            row["search"] = {k: v for k, v in searches[backend].items() if k != "best"}
        failed = next((r for r in results if not r.ok), None)
        if failed is not None or not results:
            out.append(row | {"error": failed.error if failed else "not measured"})
            continue
        p90 = median(results, "latency_p90_ms")
        stability = sorted({str(r.metrics.stability) for r in results})
        quality = results[-1].metrics.quality_ratio
        row |= {"p50_ms": median(results, "latency_p50_ms"), "p90_ms": p90,
                "quality_ratio": quality, "stability": ",".join(stability),
                "speedup_p90": base90 / p90 if base90 and p90 else None,
                "meets_quality": quality is not None and quality >= QUALITY_FLOOR}
        out.append(row)
    for backend in backends:  # the searches that found nothing get a row saying so
        found = searches.get(backend, {})
        if found.get("best") is None:
            out.append({"workload": name, "description": description, "row": f"best {backend}",
                        "summary": found.get("error") or found.get("why", "not searched"),
                        "search": {k: v for k, v in found.items() if k != "best"},
                        "host": host["cpu_model"], "isa": host["isa"], "infeasible": True})
    contenders = [r for r in out if r["row"].startswith("best ") and r.get("p90_ms")
                  and r.get("meets_quality") and "unstable" not in r.get("stability", "")]
    if contenders:
        winner = min(contenders, key=lambda r: r["p90_ms"])
        out.append(winner | {"row": PODIUM_BEST, "winner": winner["row"]})
    else:
        remeasured = any(r["row"].startswith("best ") and r.get("p90_ms") for r in out)
        reason = (f"none: no re-measured best is both not unstable and at quality_ratio ≥ "
                  f"{QUALITY_FLOOR}" if remeasured else "none feasible")
        out.append({"workload": name, "description": description, "row": PODIUM_BEST,
                    "summary": reason, "host": host["cpu_model"], "isa": host["isa"],
                    "infeasible": True})
    return out


def print_tables(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    for name in dict.fromkeys(r["workload"] for r in rows):
        group = [r for r in rows if r["workload"] == name]
        table = Table(title=f"{name} — {group[0]['description']} (batch 1; speed-up = ORT "
                            f"default p90 / row p90; best = search at quality_ratio ≥ "
                            f"{QUALITY_FLOOR})")
        for column in ("row", "configuration", "p50 ms", "p90 ms", "quality ratio",
                       "speed-up p90", "stability", "search"):
            table.add_column(column, overflow="fold")
        for row in group:
            search = row.get("search") or {}
            search_text = searched(search) if "trials" in search else ""
            label = row["row"] + (f" = {row['winner']}" if "winner" in row else "")
            if row.get("infeasible") or "error" in row:
                reason = row["summary"] if row.get("infeasible") else (
                    f"{row['summary']}: failed: {row['error'][:100]}")
                table.add_row(label, reason, "—", "—", "—", "—", "", search_text)
                continue
            speedup = number(row.get("speedup_p90"), ".2f")
            table.add_row(label, row["summary"], number(row["p50_ms"], ".4g"),
                          number(row["p90_ms"], ".4g"),
                          number(row["quality_ratio"], ".4f")
                          + ("" if row["meets_quality"] else " ✗"),
                          speedup + ("×" if row.get("speedup_p90") else ""), row["stability"],
                          search_text)
        console.print(table)


def main() -> None:
    from tuner.backends.registry import backend_names

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=[*BUILTIN, *USER_MODELS])
    parser.add_argument("--backends", nargs="+", default=backend_names())
    parser.add_argument("--trials", type=int, default=8, help="search budget per backend")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tvm-tuning-trials", type=int, default=64,
                        help="MetaSchedule trials of every TVM build (0: untuned)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trial-timeout", type=float, default=1800.0,
                        help="seconds for each trial's build and for its measurement")
    parser.add_argument("--keep-database", action="store_true",
                        help="reuse the tuning database and artifacts of an earlier run")
    parser.add_argument("--smoke", action="store_true",
                        help="a quick check: digits + user-sequence, 2 trials per backend, "
                             "1 round, TVM untuned, latency phase capped at 2 s")
    parser.add_argument("--home", type=Path, default=ROOT / "bench/results/backends-home")
    parser.add_argument("--out", type=Path, default=None,
                        help="default bench/results/backends.json (backends-smoke.json)")
    parser.add_argument("--show", type=Path, nargs="+",
                        help="print the tables of earlier results files and exit")
    args = parser.parse_args()
    if args.show:
        print_tables([row for path in args.show for row in json.loads(path.read_text())])
        return
    if args.smoke:
        args.workloads, args.trials, args.rounds = SMOKE_WORKLOADS, 2, 1
        args.tvm_tuning_trials = 0
    args.out = args.out or ROOT / "bench/results" / (
        "backends-smoke.json" if args.smoke else "backends.json")
    unknown = [n for n in args.workloads if n not in BUILTIN and n not in USER_MODELS]
    unknown += [b for b in args.backends if b not in backend_names()]
    if unknown:
        parser.error(f"unknown {', '.join(unknown)} (workloads: "
                     f"{', '.join([*BUILTIN, *USER_MODELS])}; backends: "
                     f"{', '.join(backend_names())})")
    args.home.mkdir(parents=True, exist_ok=True)
    prepare_home(args.home, args.keep_database)
    os.environ["PODIUM_HOME"] = str(args.home.resolve())

    from tuner.trial.config import Configuration
    from tuner.trial.measure import Protocol

    host = host_facts()
    print_host(host)
    # Caps the latency phase of slow artifacts (untuned TVM), which then report no p99 (not
    # shown here); the smoke's 2 s still leave ≥ 64 calls for p90 down to 30 ms a call.
    protocol = Protocol(max_latency_s=2.0 if args.smoke else 15.0)
    cores = len(os.sched_getaffinity(0))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="podium-backends-bench-") as tmp:
        for name in args.workloads:
            workload, description = load(name, Path(tmp))
            print(f"[{time.strftime('%H:%M:%S')}] {name}: {description}", flush=True)
            with local_ray():
                searches = {b: search(workload, b, args, protocol) for b in args.backends}
            targets = {label: Configuration.parse(values)
                       for label, values in fixed_rows(args.backends, cores).items()}
            targets |= {f"best {b}": found["best"] for b, found in searches.items()
                        if found.get("best") is not None}
            print(f"[{time.strftime('%H:%M:%S')}] {name}: re-measuring {len(targets)} rows × "
                  f"{args.rounds} rounds", flush=True)
            measured = measure(workload, targets, args.rounds, protocol, args.trial_timeout)
            group = summarise(name, description, workload.reference, host, targets, measured,
                              searches, args.backends)
            print_tables(group)
            rows += group
            save_rows(args.out, rows)
    print_host(host)
    print(f"full results: {args.out}")


if __name__ == "__main__":
    main()

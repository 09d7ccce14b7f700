"""Mixed-precision int8 side by side: ORT default fp32, naive int8, and what the search found.

For each built-in workload and two generated models with outlier-heavy layers:

1. ``tuner.search.optimize.optimize`` searches ORT configurations at batch 1 on one thread (fp32 or
   static int8, with the mixed-precision keys open) for the lowest p50 latency under
   ``quality_ratio >= 0.99``, without warm start;
2. the ORT default (fp32, every core), fp32 on one thread, naive static int8 (every
   node, default settings) and the search's best are then re-measured in ``--rounds``
   interleaved rounds, each measurement in its own fresh pinned process, so the ratios
   compare numbers taken in the same run (MEASUREMENT.md rule 8).

The generated models put a few activation channels 100× above the rest, the way
LayerNorm gains do in large language models (LLM.int8): a per-channel gain (``Mul``)
scales 4 channels up and the next layer's weights on those channels down by the same
factor, so the fp32 function is that of an ordinary network, but a per-tensor int8 scale
of that activation rounds every other channel away.

Everything lives under a private PODIUM_HOME (``--home``, default
``bench/results/quant-home``), seeded with the built-in workloads already built in the
user's home, so the user's knowledge store and caches are not touched.

    python bench/quantization.py [--workloads digits convnet encoder mlp-outliers conv-outliers]
                                 [--trials 12] [--rounds 2]
    python bench/quantization.py --show bench/results/quantization.json
"""

from __future__ import annotations

import argparse
import itertools
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

from bench.common import measure_rounds, save_rows, seed_home  # noqa: E402

QUALITY_FLOOR = 0.99
OUTLIER_GAIN = 100.0
GENERATED = ("mlp-outliers", "conv-outliers")
# ORT only, batch 1, one thread: the search spends its budget on precision choices.
SPACE: dict[str, Any] = {
    "backend": "ort", "batch": 1, "threads": 1, "ort_graph_optimization": "all",
    "precision": ["fp32", "int8-static"], "calibration": "minmax",
    "per_channel": [False, True], "int8_op_types": ["all", "conv-matmul"],
    "int8_keep_fp32": [0, 1, 2, 4, 8], "quant_format": "qdq",
    "activation_symmetric": False, "reduce_range": False, "calibration_rows": 128,
}


def _save(nodes: list, inputs: list, outputs: list, initializers: list, path: Path) -> None:
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, path.stem, inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def outlier_mlp(folder: Path, *, features: int = 256, hidden: int = 1024, classes: int = 10,
                rows: int = 640, outliers: int = 4) -> tuple[Path, Path]:
    """A 3×1024 ReLU MLP whose last hidden activation has ``outliers`` channels 100× larger.

    Inputs are noisy class centroids (fp32 accuracy ~0.92) and the head is fitted by ridge
    regression on the fp32 features, so agreement with fp32 is meaningful: quantizing only
    the outlier activation per tensor drops it to ~0.85 (numpy simulation).
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(11)
    centroids = rng.normal(size=(classes, features)).astype(np.float32)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, classes, n)
        return (centroids[y] + 2.5 * rng.normal(size=(n, features))).astype(np.float32), y

    sizes = [features, hidden, hidden, hidden]
    weights = [(rng.normal(size=(i, o)) * np.sqrt(2 / i)).astype(np.float32)
               for i, o in itertools.pairwise(sizes)]
    gain = np.ones(hidden, np.float32)
    gain[rng.choice(hidden, outliers, replace=False)] = OUTLIER_GAIN
    x, y = sample(2000)
    for w in weights:
        x = np.maximum(x @ w, 0)
    targets = np.eye(classes, dtype=np.float32)[y] * 4
    head = np.linalg.solve(x.T @ x + np.eye(hidden), x.T @ targets).astype(np.float32)
    inits = [numpy_helper.from_array(w, f"w{i}") for i, w in enumerate(weights, 1)]
    inits += [numpy_helper.from_array(gain, "gain"),
              numpy_helper.from_array(head / gain[:, None], "wo")]
    nodes, previous = [], "x"
    for i in range(1, len(weights) + 1):
        nodes += [helper.make_node("MatMul", [previous, f"w{i}"], [f"m{i}"], name=f"fc{i}"),
                  helper.make_node("Relu", [f"m{i}"], [f"h{i}"], name=f"relu{i}")]
        previous = f"h{i}"
    nodes += [helper.make_node("Mul", [previous, "gain"], ["scaled"], name="outlier_gain"),
              helper.make_node("MatMul", ["scaled", "wo"], ["logits"], name="head")]
    model, data = folder / "mlp-outliers.onnx", folder / "mlp-outliers.npz"
    _save(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", features])],
          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
          inits, model)
    np.savez(data, x=sample(rows)[0])
    return model, data


def outlier_convnet(folder: Path, *, size: int = 64, rows: int = 300,
                    outliers: int = 3) -> tuple[Path, Path]:
    """conv 3→32 → conv 32→64 (stride 2) → gain with ``outliers`` channels ×100 → conv 64→128
    (stride 2) → conv 128→128 → flatten → linear head.

    Inputs are noisy renders of 10 blocky class templates; the head is fitted by ridge
    regression on the fp32 features, so agreement reflects real margins, and it reads every
    position (no global pooling, which would average the int8 noise away). With
    ``outliers=0`` there is no gain node: an ordinary convnet (bench/backends.py uses it).
    """
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(12)
    channels = [3, 32, 64, 128, 128]
    templates = rng.normal(size=(10, 3, size // 8, size // 8)).astype(np.float32)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 10, n)
        blocks = templates[y] + 3.0 * rng.normal(size=(n, 3, size // 8, size // 8))
        images = blocks.repeat(8, axis=2).repeat(8, axis=3)
        return (images + 0.3 * rng.normal(size=images.shape)).astype(np.float32), y

    def conv_weight(cin: int, cout: int) -> np.ndarray:
        return (rng.normal(size=(cout, cin, 3, 3)) * np.sqrt(2 / (cin * 9))).astype(np.float32)

    weights = [conv_weight(i, o) for i, o in itertools.pairwise(channels)]
    gain = np.ones(channels[2], np.float32)
    gain[rng.choice(channels[2], outliers, replace=False)] = OUTLIER_GAIN
    weights[2] = (weights[2] / gain[None, :, None, None]).astype(np.float32)
    inits = [numpy_helper.from_array(w, f"k{i}") for i, w in enumerate(weights, 1)]
    inits += [numpy_helper.from_array(np.full(o, 0.05, np.float32), f"b{i}")
              for i, o in enumerate(channels[1:], 1)]
    if outliers:
        inits.append(numpy_helper.from_array(gain.reshape(1, -1, 1, 1), "gain"))
    nodes, previous = [], "image"
    for i in (1, 2, 3, 4):
        strides = [2, 2] if i in (2, 3) else [1, 1]
        nodes += [helper.make_node("Conv", [previous, f"k{i}", f"b{i}"], [f"c{i}"],
                                   name=f"conv{i}", pads=[1, 1, 1, 1], strides=strides),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}")]
        previous = f"r{i}"
        if i == 2 and outliers:
            nodes.append(helper.make_node("Mul", ["r2", "gain"], ["scaled"],
                                          name="outlier_gain"))
            previous = "scaled"
    nodes.append(helper.make_node("Flatten", ["r4"], ["flat"], name="flatten"))
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])
    flat = channels[-1] * (size // 4) ** 2
    body = folder / "conv-outliers-features.onnx"
    _save(nodes, [image], [helper.make_tensor_value_info("flat", TensorProto.FLOAT,
                                                         ["N", flat])], inits, body)
    train, y = sample(1000)
    features = ort.InferenceSession(str(body), providers=["CPUExecutionProvider"]).run(
        None, {"image": train})[0].astype(np.float64)
    targets = np.eye(10)[y] * 4
    # Ridge in its dual form: 1000 samples, 32768 features.
    head = features.T @ np.linalg.solve(features @ features.T + 10.0 * np.eye(len(y)), targets)
    inits.append(numpy_helper.from_array(head.astype(np.float32), "wo"))
    nodes.append(helper.make_node("MatMul", ["flat", "wo"], ["logits"], name="head"))
    model, data = folder / "conv-outliers.onnx", folder / "conv-outliers.npz"
    _save(nodes, [image], [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                                         ["N", 10])], inits, model)
    np.savez(data, image=sample(rows)[0])
    return model, data


def load(name: str, folder: Path):
    import workloads

    if name == "mlp-outliers":
        return workloads.from_files(*outlier_mlp(folder), name=name)
    if name == "conv-outliers":
        return workloads.from_files(*outlier_convnet(folder), name=name)
    return workloads.get(name)


def search(workload, trials: int, home: Path, protocol) -> Any:
    from tuner.search.optimize import optimize

    return optimize(workload, ["latency_p50_ms"], [f"quality_ratio >= {QUALITY_FLOOR}"],
                    trials=trials, space=SPACE, warm_start=False, protocol=protocol,
                    storage=f"sqlite:///{home / 'bench-quantization.db'}",
                    study=f"{workload.name}-{workload.sha256[:12]}-{time.time_ns()}")


def kept_description(trial) -> str:
    """Which nodes stayed fp32: the ranked cut, plus the op types left out of int8."""
    config = trial.config
    if config["precision"] == "fp32":
        return "all (fp32)"
    details = trial.artifact["details"]
    kept = details.get("int8_kept_fp32", [])
    text = f"cut {len(kept)}: {', '.join(kept)}" if kept else "cut 0"
    counts = {k: len(details.get(f"{k}_nodes", [])) for k in ("int8", "fp32")}
    text += f"; {counts['int8']} int8 / {counts['fp32']} fp32 nodes"
    return text + (f"; op types {config['int8_op_types']}" if config["int8_op_types"] != "all"
                   else "")


def summarise(workload, result, measured: dict[str, list], search_s: float) -> list[dict]:
    def median(name: str, metric: str) -> float | None:
        values = [r.metric(metric) for r in measured[name] if r.ok and r.metric(metric)]
        return statistics.median(values) if values else None

    base50, base90 = median("ort default", "latency_p50_ms"), median("ort default",
                                                                     "latency_p90_ms")
    single = median("fp32 1t", "latency_p50_ms")
    rows = []
    for name, trials in measured.items():
        last = trials[-1]
        row: dict[str, Any] = {"workload": workload.name, "row": name, "config": last.config}
        if not last.ok:
            rows.append(row | {"error": last.error})
            continue
        p50, p90 = median(name, "latency_p50_ms"), median(name, "latency_p90_ms")
        stability = sorted({str(t.metrics.stability) for t in trials if t.ok})
        row |= {"p50_ms": p50, "p90_ms": p90,
                "speedup_p50": base50 / p50 if base50 and p50 else None,
                "speedup_p90": base90 / p90 if base90 and p90 else None,
                "speedup_p50_vs_fp32_1t": single / p50 if single and p50 else None,
                "quality_ratio": last.metrics.quality_ratio, "stability": ",".join(stability),
                "fp32": kept_description(last)}
        if name == "best mixed":
            row |= {"trials": result.n_trials, "failed": result.n_failed,
                    "search_s": round(search_s)}
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"static int8 at quality_ratio ≥ {QUALITY_FLOOR} (speedup = ORT default "
                        "p50 / row p50, measured side by side)")
    for column in ("workload", "row", "p50 ms", "speedup p50", "speedup p90",
                   "p50 vs fp32 1t", "quality_ratio", "stability", "trials", "stayed fp32"):
        table.add_column(column, overflow="fold")
    for row in rows:
        if "error" in row:
            table.add_row(row["workload"], row["row"], "failed", "", "", "", "", "", "",
                          row["error"][:80])
            continue
        trials = (f"{row['trials']} ({row['failed']} failed, {row['search_s']} s)"
                  if "trials" in row else "")
        ratios = [row.get(k) for k in ("speedup_p50", "speedup_p90", "speedup_p50_vs_fp32_1t")]
        table.add_row(row["workload"], row["row"], f"{row['p50_ms']:.4g}",
                      *(f"{r:.2f}×" if r else "—" for r in ratios),
                      f"{row['quality_ratio']:.4f}", row["stability"], trials, row["fp32"])
    Console(width=200).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+",
                        default=["digits", "convnet", "encoder", *GENERATED])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--home", type=Path, default=ROOT / "bench/results/quant-home")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/quantization.json")
    parser.add_argument("--show", type=Path, nargs="+",
                        help="print the table of earlier results files and exit")
    args = parser.parse_args()
    if args.show:
        print_table([row for path in args.show for row in json.loads(path.read_text())])
        return
    args.home.mkdir(parents=True, exist_ok=True)
    seed_home(args.home)
    os.environ["PODIUM_HOME"] = str(args.home.resolve())

    from tuner.trial.config import Configuration
    from tuner.trial.measure import Protocol

    protocol = Protocol(max_latency_s=15.0)
    cores = len(os.sched_getaffinity(0))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="podium-quant-bench-") as tmp:
        for name in args.workloads:
            workload = load(name, Path(tmp))
            print(f"[{time.strftime('%H:%M:%S')}] {name}: searching {args.trials} trials",
                  flush=True)
            start = time.perf_counter()
            result = search(workload, args.trials, args.home, protocol)
            search_s = time.perf_counter() - start
            configs = {"ort default": {"threads": cores}, "fp32 1t": {"threads": 1},
                       "naive int8 1t": {"threads": 1, "precision": "int8-static"}}
            if result.best is not None:
                configs["best mixed"] = result.best.config
            print(f"[{time.strftime('%H:%M:%S')}] {name}: search took {search_s:.0f} s; "
                  f"re-measuring {len(configs)} rows × {args.rounds} rounds", flush=True)
            measured = measure_rounds(
                {label: (workload, Configuration.parse(values))
                 for label, values in configs.items()}, args.rounds, protocol)
            rows += summarise(workload, result, measured, search_s)
            save_rows(args.out, rows)
    print_table(rows)
    print(f"full results: {args.out}")


if __name__ == "__main__":
    main()

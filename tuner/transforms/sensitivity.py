"""Which nodes int8 hurts most: a per-model sensitivity ranking for mixed precision.

Naive all-node int8 can destroy a real model (TERRAIN.md: < 1 % top-1 agreement on a real
classifier), and greedy exclusion measured trial by trial is noisy and expensive. So the
ranking is computed once per (model, int8 settings) and the search only chooses the cut
(``int8_keep_fp32``): the first k nodes of the ranking stay fp32.

Method: quantize the whole model, then once per candidate node with only that node kept
fp32, and score each model on ``RANKING_ROWS`` held-out rows (never the calibration rows)
by the relative error of the scored output against the fp32 model's own outputs. The most
sensitive node is the one whose fp32 copy leaves the least error. Relative error rather than
top-1 agreement because a small probe set makes agreement jump in steps of one sample.
Candidates are capped to the nodes with the most weight elements, which is where int8
saves time and where per-tensor scales most often break, so the cost stays
``MAX_CANDIDATES + 1`` quantizations. Static int8 calibrates once for all of them
(:func:`tuner.transforms.precision._ranges_path`): keeping a node fp32 does not change
the calibrated ranges of the others, so the ranking is the same as with recalibration.

Single-node exclusion has a blind spot: a tensor between two quantized nodes stays
quantized while either of them is int8, so damage done there (an outlier activation
produced by a quantized ``Mul`` and read by a quantized ``Conv``) only shows when both
are kept; restricting ``int8_op_types`` to the linear ops covers that case.

The ranking is cached as JSON under ``PODIUM_HOME/sensitivity/<key>``; concurrent builds
of the same model wait on a file lock, and the file is written atomically.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import tempfile
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workloads.layout import Layout
from workloads.paths import cache_dir

MAX_CANDIDATES = 12
MAX_PROBE_ROWS = 256
# Rows a ranking scores each of its MAX_CANDIDATES + 1 models on: the relative error of
# every output value over 64 rows orders the nodes as well as over 256, at a quarter of the
# cost (convnet-m's int8-dynamic ranking took 123 s on 256 rows, all of it inference).
RANKING_ROWS = 64
PROBE_BATCH = 64
RANKING_VERSION = 2

# Writes the model quantized with the given nodes kept fp32 to the given path.
Quantizer = Callable[[Path, list[str]], None]


@dataclass(frozen=True)
class Probe:
    """Held-out rows the ranking is scored on (canonical: batch on axis 0), how the model
    takes them (``layout``: batch axes, constants), which model output is scored, and the
    workload's ``metric`` for it (a :class:`workloads.base.Metric` value; rankings score
    by relative error whatever it is, a quantizer's own accuracy check follows it)."""

    inputs: dict[str, np.ndarray]
    output_index: int = 0
    layout: Layout | None = None
    metric: str | None = None

    @classmethod
    def from_rows(cls, inputs: dict[str, np.ndarray], output_index: int = 0, *,
                  layout: Layout | None = None, metric: str | None = None) -> Probe:
        """The first ``MAX_PROBE_ROWS`` rows: enough to rank, cheap to run N+1 times."""
        return cls({k: v[:MAX_PROBE_ROWS] for k, v in inputs.items()}, output_index, layout,
                   metric)

    def digest(self) -> str:
        h = hashlib.sha256(str(self.output_index).encode())
        for name in sorted(self.inputs):
            h.update(name.encode())
            h.update(np.ascontiguousarray(self.inputs[name]).tobytes())
        if self.layout is not None and not (self.layout.is_batch_first
                                            and not self.layout.constants):
            h.update(json.dumps(self.layout.as_dict(), sort_keys=True).encode())
            for name in sorted(self.layout.constants):
                h.update(np.ascontiguousarray(self.layout.constants[name]).tobytes())
        return h.hexdigest()


def candidate_nodes(model_path: Path, op_types: Collection[str], *,
                    limit: int = MAX_CANDIDATES) -> list[str]:
    """Named nodes of ``op_types``, largest weights first (graph order breaks ties)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    sizes = {t.name: int(np.prod(t.dims)) for t in model.graph.initializer}
    nodes = [(-sum(sizes.get(i, 0) for i in n.input), index, n.name)
             for index, n in enumerate(model.graph.node) if n.op_type in op_types and n.name]
    return [name for _, _, name in sorted(nodes)[:limit]]


def ranking(model_path: Path, quantize: Quantizer, probe: Probe, *, model_sha256: str,
            op_types: Collection[str], settings: dict[str, Any]) -> dict[str, Any]:
    """Return the cached (or freshly computed) ranking of ``model_path`` under ``settings``.

    Args:
        model_path: the model the quantizer reads (pre-processed, every node named).
        quantize: writes the model quantized with some nodes kept fp32.
        probe: held-out rows to score on.
        model_sha256: the original model's hash (the cache is per model, not per file copy).
        op_types: the op types being quantized (candidates are taken from them).
        settings: everything that changes how ``quantize`` quantizes (cache key material).

    Returns:
        ``{"key", "ranking", "error_all_int8", "error_kept_fp32"}``: ``ranking`` lists the
        candidates from most to least sensitive.
    """
    from workloads.versions import package_versions

    material = {"version": RANKING_VERSION, "model": model_sha256,
                "settings": settings, "op_types": sorted(op_types), "probe": probe.digest(),
                "onnxruntime": package_versions().get("onnxruntime")}
    key = hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()
    path = cache_dir("sensitivity") / f"{key[:24]}.json"
    with _locked(path.with_suffix(".lock")):
        if path.exists():
            return json.loads(path.read_text())
        result = {"key": key[:24], **_compute(model_path, quantize, probe, op_types)}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(path)
    return result


def _compute(model_path: Path, quantize: Quantizer, probe: Probe,
             op_types: Collection[str]) -> dict[str, Any]:
    candidates = candidate_nodes(model_path, op_types)
    reference = _outputs(model_path, probe)
    with tempfile.TemporaryDirectory() as tmp:
        def error(kept: list[str]) -> float:
            out = Path(tmp) / "probe.onnx"
            quantize(out, kept)
            return _relative_error(_outputs(out, probe), reference)

        base = error([])
        kept_errors = {node: error([node]) for node in candidates}
    order = sorted(candidates, key=lambda n: kept_errors[n])
    return {"ranking": order, "error_all_int8": base, "error_kept_fp32": kept_errors}


def _outputs(model_path: Path, probe: Probe) -> np.ndarray:
    import onnxruntime as ort

    from workloads.reference import run_in_batches

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    layout = probe.layout or Layout.batch_first(list(probe.inputs))
    first = next(node.shape[layout.inputs[node.name]] for node in session.get_inputs()
                 if layout.inputs.get(node.name) is not None)
    fixed = isinstance(first, int) and first > 0
    rows = {k: v[:RANKING_ROWS] for k, v in probe.inputs.items()}
    outputs = run_in_batches(layout.wrap(lambda feed: session.run(None, feed)), rows,
                             first if fixed else PROBE_BATCH, pad=fixed)
    return outputs[probe.output_index]


def _relative_error(outputs: np.ndarray, reference: np.ndarray) -> float:
    diff = np.linalg.norm((outputs - reference).astype(np.float64).ravel())
    norm = np.linalg.norm(reference.astype(np.float64).ravel())
    error = diff / max(norm, 1e-30)
    return float(error) if np.isfinite(error) else float("inf")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock: one build computes a ranking, the others then read it."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

"""The fp32 reference: the reference variant at fp32 on ONNX Runtime, default options.

Its outputs on the evaluation set are computed once per workload and stored beside the
workload (``reference.npz``); agreement and relative-error scores compare against them,
and ``quality_ratio`` divides by the reference's own quality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from workloads.base import Metric
from workloads.errors import WorkloadError
from workloads.layout import Layout
from workloads.quality import score

REFERENCE_BATCH = 64


def run_in_batches(run, inputs: dict[str, np.ndarray], batch: int, *,
                   pad: bool) -> np.ndarray | list[np.ndarray]:
    """Run ``run(inputs)`` over the dataset in chunks of ``batch`` rows.

    With ``pad`` the last chunk is zero-padded to ``batch`` rows (fixed-shape backends)
    and the padding rows are dropped from the outputs. Returns the outputs concatenated
    along axis 0, one array per model output.
    """
    n = len(next(iter(inputs.values())))
    chunks: list[list[np.ndarray]] = []
    for start in range(0, n, batch):
        part = {k: v[start:start + batch] for k, v in inputs.items()}
        rows = len(next(iter(part.values())))
        if pad and rows < batch:
            part = {k: np.concatenate([v, np.zeros((batch - rows, *v.shape[1:]), v.dtype)])
                    for k, v in part.items()}
        chunks.append([np.asarray(o)[:rows] for o in run(part)])
    return [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]


def reference_session(model_path: Path) -> Any:
    """An ORT session with default options on one thread: how the fp32 reference runs."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 4  # errors surface as exceptions, not as log lines
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def compute_reference(model_path: Path, inputs: dict[str, np.ndarray], *,
                      batch: int = REFERENCE_BATCH,
                      layout: Layout | None = None, pad: bool = False) -> list[np.ndarray]:
    """fp32 outputs of ``model_path`` on canonical ``inputs`` (batch on axis 0, constants
    in ``layout``), with ORT's default session options; outputs come back canonical too.
    ``pad`` fills the last chunk up to ``batch`` rows, for a model with a fixed batch."""
    session = reference_session(model_path)
    run = lambda feed: session.run(None, feed)  # noqa: E731 - wrapped just below
    if layout is not None:
        run = layout.wrap(run)
    outputs = run_in_batches(run, inputs, batch, pad=pad)
    for name, out in zip((o.name for o in session.get_outputs()), outputs, strict=True):
        if np.issubdtype(out.dtype, np.floating) and not np.all(np.isfinite(out)):
            raise WorkloadError(f"the reference model {model_path.name} produces NaN/Inf in "
                                f"output {name!r} on the evaluation data")
    return outputs


def reference_quality(metric: Metric, reference: np.ndarray, labels: np.ndarray | None) -> float:
    """The reference's own score: its accuracy, or 1.0 for scores relative to itself."""
    return score(metric, reference, labels=labels, reference=reference)

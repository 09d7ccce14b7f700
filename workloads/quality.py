"""Quality scores: every score is in [0, 1], higher is better, computed from outputs.

The scored output is the one the workload names (``Workload.output_index``); outputs of
the artifact under test are compared with labels or with the fp32 reference outputs of
the workload's reference variant on ONNX Runtime.
"""

from __future__ import annotations

import numpy as np

from workloads.base import Metric


def score(metric: Metric, outputs: np.ndarray, *, labels: np.ndarray | None,
          reference: np.ndarray | None) -> float:
    """Score ``outputs`` (batch on axis 0) against ``labels`` or ``reference``."""
    if metric is Metric.ACCURACY:
        if labels is None:
            raise ValueError("accuracy needs labels")
        return float(np.mean(np.argmax(outputs, axis=-1) == labels))
    if reference is None:
        raise ValueError(f"{metric} needs the fp32 reference outputs")
    if metric is Metric.AGREEMENT:
        return float(np.mean(np.argmax(outputs, axis=-1) == np.argmax(reference, axis=-1)))
    diff = np.linalg.norm((outputs - reference).astype(np.float64).ravel())
    norm = np.linalg.norm(reference.astype(np.float64).ravel())
    return float(max(0.0, 1.0 - diff / max(norm, 1e-30)))


def choose_metric(outputs: np.ndarray, has_labels: bool) -> Metric:
    """The metric for a user workload: accuracy with labels, agreement for class scores."""
    if has_labels:
        return Metric.ACCURACY
    if outputs.ndim >= 2 and outputs.shape[-1] > 1 and np.issubdtype(outputs.dtype, np.floating):
        return Metric.AGREEMENT
    return Metric.RELATIVE_ERROR


# A row whose top score leads the runner-up by less than this many of the row's standard
# deviations is *fragile*: a small numeric change (int8 rounding) can flip its argmax. On
# the 19 workloads of bench/warm_start.py no configuration of a reference variant (380
# measured: fp16, int8 of every scheme) lost more than its fragile share at 0.1 or 0.2;
# at 0.05, 16 did. 0.2 keeps a factor of four from there.
FRAGILE_MARGIN = 0.2


def fragile_share(metric: Metric, reference: np.ndarray) -> float | None:
    """Share of the fp32 reference's score rows (last axis) that are fragile.

    The int8 quality loss of a model is mostly rows that flip, and rows with a wide margin
    do not: a model whose rows are all robust loses (next to) nothing, whatever a relative
    with the same graph but other weights lost. None where the score is not an argmax
    (relative error, or one score per row).
    """
    if metric is Metric.RELATIVE_ERROR or reference.ndim < 2 or reference.shape[-1] < 2:
        return None
    rows = reference.reshape(-1, reference.shape[-1]).astype(np.float64)
    top_two = np.sort(rows, axis=-1)[:, -2:]
    spread = np.maximum(rows.std(axis=-1), np.finfo(np.float64).tiny)
    return round(float(np.mean(top_two[:, 1] - top_two[:, 0] < FRAGILE_MARGIN * spread)), 4)

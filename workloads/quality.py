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

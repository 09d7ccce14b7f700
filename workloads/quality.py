"""Quality scores: every score is in [0, 1], higher is better, computed from outputs.

The first scored output is the one the workload names (``Workload.output_index``) and is
scored with the workload's metric (labels apply to it); a user model's other batched
outputs are scored too, against the fp32 reference, unless the user left them out. The
outputs of the artifact under test are compared with labels or with the fp32 reference
outputs of the workload's reference variant on ONNX Runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from workloads.base import Metric

if TYPE_CHECKING:
    from workloads.base import Workload


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


def quality_of(workload: Workload, outputs: list[np.ndarray]) -> dict[str, Any]:
    """``quality`` of canonical ``outputs`` over every scored output, and ``eval_samples``.

    With one scored output this is its score. With several, the first output's score is
    scaled by the worst output's ratio to fp32, so ``quality_ratio`` is the worst output's
    ratio (a quantized state output that drifts is a loss, even when the class output
    holds); each output's own score is kept in ``quality_by_output``.
    """
    first = workload.output_index
    primary = score(workload.metric, outputs[first], labels=workload.eval_labels,
                    reference=workload.reference_outputs)
    stats: dict[str, Any] = {"quality": primary, "eval_samples": len(outputs[first])}
    others = [i for i in workload.scored_outputs if i != first]
    if not others:
        return stats
    names = list(workload.layout.outputs) or [f"output {i}" for i in range(len(outputs))]
    by_output = {names[first]: primary}
    ratios = [primary / workload.reference_quality if workload.reference_quality > 0 else 1.0]
    for index in others:
        reference = workload.reference_output(index)
        by_output[names[index]] = score(secondary_metric(reference), outputs[index],
                                        labels=None, reference=reference)
        ratios.append(by_output[names[index]])
    stats["quality"] = min(ratios) * workload.reference_quality
    stats["quality_by_output"] = by_output
    return stats


def secondary_metric(reference: np.ndarray) -> Metric:
    """A further scored output: class scores per row (``[rows, classes]``) by top-1
    agreement, anything else (a state, a sequence of features) by relative error."""
    if (reference.ndim == 2 and reference.shape[-1] > 1
            and np.issubdtype(reference.dtype, np.floating)):
        return Metric.AGREEMENT
    return Metric.RELATIVE_ERROR


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

"""Transforms stage: ONNX → ONNX before a backend builds — clean-up, then precision.

Owns ``cleanup`` (graph clean-up), ``precision`` (fp16, dynamic/static int8, mixed
precision) and ``sensitivity`` (the per-node int8 ranking mixed precision cuts by);
:func:`apply_transforms` runs them in order.

May import: the records (:mod:`tuner.trial.config`), :mod:`tuner.hardware`,
:mod:`tuner.errors` and ``workloads``. Never a stage above (trial, knowledge, search, cli).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.transforms.cleanup import apply_cleanup
from tuner.transforms.precision import apply_precision

if TYPE_CHECKING:
    import numpy as np

    from tuner.transforms.sensitivity import Probe
    from tuner.trial.config import Configuration
    from workloads.layout import Layout

__all__ = ["apply_cleanup", "apply_precision", "apply_transforms"]


def apply_transforms(model_path: Path, config: Configuration, out_path: Path, *,
                     calibration: dict[str, np.ndarray] | None,
                     probe: Probe | None = None, layout: Layout | None = None,
                     convert_precision: bool = True) -> dict[str, Any]:
    """Write ``model_path`` cleaned up and converted as ``config`` says into ``out_path``.

    ``calibration`` rows are canonical (batch on axis 0); ``layout`` turns them into the
    model's inputs. ``convert_precision=False`` leaves the graph fp32, for a backend that
    applies the precision itself (:attr:`~tuner.backends.base.Backend.precision_in_onnx`).
    Returns the details of every step (see :func:`apply_cleanup`, :func:`apply_precision`).
    """
    with tempfile.TemporaryDirectory() as tmp:
        source, details = apply_cleanup(model_path, config, Path(tmp) / "cleaned.onnx")
        if not convert_precision:
            out_path.write_bytes(source.read_bytes())
            return details
        return details | apply_precision(source, config, out_path, calibration=calibration,
                                         probe=probe, layout=layout)

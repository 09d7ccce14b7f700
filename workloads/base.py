"""What a workload is: model variants, evaluation and calibration data, a quality metric.

A built-in workload is a :class:`Recipe`: a deterministic ``build(out_dir)`` function that
writes its ONNX variants into ``out_dir`` and returns a :class:`BuildOutput` with the data.
The registry (:mod:`workloads.registry`) runs recipes at first use and caches the result
under ``PODIUM_HOME``; a user workload comes from files (:mod:`workloads.user`). Both end
as a :class:`Workload`, the only type the tuner sees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from workloads.errors import WorkloadError
from workloads.layout import Layout

# Prefix of the data file's arrays that are given whole to every call (not batched).
CONSTANTS = "const__"
REFERENCE_FILE = "reference.npz"  # the fp32 reference outputs, one array per output


class Metric(StrEnum):
    """How quality is scored; every score is in [0, 1] and higher is better."""

    ACCURACY = "accuracy"  # top-1 accuracy against labels
    AGREEMENT = "agreement"  # top-1 agreement with the fp32 reference outputs
    RELATIVE_ERROR = "relative_error"  # 1 - ||y - y_ref|| / ||y_ref||, floored at 0


@dataclass(frozen=True)
class Variant:
    """One ONNX model of a workload; ``filename`` is relative to the workload folder."""

    name: str
    filename: str
    description: str = ""
    parameters: int = 0


@dataclass
class BuildOutput:
    """What a recipe's ``build`` returns after writing its variants into ``out_dir``.

    Input arrays are keyed by the model's input names, with the batch on axis 0. Labels
    are integer classes for ``Metric.ACCURACY`` and ``None`` otherwise.
    """

    variants: list[Variant]
    reference: str
    eval_inputs: dict[str, np.ndarray]
    calib_inputs: dict[str, np.ndarray]
    eval_labels: np.ndarray | None = None


@dataclass(frozen=True)
class Recipe:
    """A deterministic builder of a built-in workload. Bump ``version`` when it changes."""

    name: str
    description: str
    metric: Metric
    version: int
    build: Callable[[Path], BuildOutput]
    output_index: int = 0


@dataclass
class Workload:
    """A workload ready to run: files on disk plus their content hash.

    ``sha256`` covers every model file, the data and the metric, so two machines with
    the same hash measured the same thing. ``output_index`` selects the output that is
    scored (classifier probabilities/logits, or the only output).
    """

    name: str
    description: str
    root: Path
    variants: dict[str, Variant]
    reference: str
    metric: Metric
    sha256: str
    data_file: str = "data.npz"
    output_index: int = 0
    reference_quality: float = 1.0
    source: str = "builtin"
    extra: dict[str, str] = field(default_factory=dict)
    layout_spec: dict[str, Any] | None = None

    def variant(self, name: str | None) -> Variant:
        """Return the named variant (the reference for ``None``) or raise WorkloadError."""
        key = self.reference if name is None else name
        if key not in self.variants:
            raise WorkloadError(f"workload {self.name!r} has no variant {key!r} "
                                f"(variants: {', '.join(self.variants)})")
        return self.variants[key]

    def model_path(self, variant: str | None = None) -> Path:
        return self.root / self.variant(variant).filename

    @cached_property
    def _data(self) -> dict[str, np.ndarray]:
        with np.load(self.root / self.data_file, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}

    @property
    def eval_inputs(self) -> dict[str, np.ndarray]:
        return _section(self._data, "eval__")

    @property
    def calib_inputs(self) -> dict[str, np.ndarray]:
        return _section(self._data, "calib__")

    @property
    def constants(self) -> dict[str, np.ndarray]:
        """Inputs given whole to every call (a sample rate, a fixed mask)."""
        return _section(self._data, CONSTANTS)

    @cached_property
    def layout(self) -> Layout:
        """Where each input and output carries the batch (:mod:`workloads.layout`); the
        data sections above are canonical: batch on axis 0, constants apart."""
        if self.layout_spec is None:
            return Layout.batch_first(list(self.eval_inputs))
        return Layout.from_dict(self.layout_spec, self.constants)

    @cached_property
    def fixed_batch(self) -> int | None:
        """The batch the reference variant was exported with where it is fixed (``[1, 576]``
        takes one row per call), else None."""
        from workloads.batch_axes import fixed_batch
        from workloads.onnx_files import session_io

        return fixed_batch(session_io(self.model_path())[1], self.layout)

    def example_feed(self, batch: int) -> dict[str, np.ndarray]:
        """One call's inputs as the model takes them: ``batch`` real evaluation rows,
        repeated when the evaluation set is smaller, plus the constants."""
        rows = self.eval_inputs
        index = np.arange(batch) % len(next(iter(rows.values())))
        return self.layout.feed({k: np.ascontiguousarray(v[index]) for k, v in rows.items()})

    @property
    def scored_outputs(self) -> list[int]:
        """Indices of the outputs quality scores; the first is ``output_index``."""
        if self.layout_spec is None:
            return [self.output_index]
        scored = self.layout.scored(len(self.layout.outputs))
        return [self.output_index, *(i for i in scored if i != self.output_index)]

    def reference_output(self, index: int) -> np.ndarray:
        """fp32 reference outputs (canonical) of output ``index`` on the evaluation set."""
        return load_reference(self.root, index)

    @property
    def eval_labels(self) -> np.ndarray | None:
        return self._data.get("labels")

    @cached_property
    def reference_outputs(self) -> np.ndarray:
        """fp32 ORT outputs of the reference variant on the evaluation set (scored output)."""
        return load_reference(self.root, self.output_index)

    @property
    def n_eval(self) -> int:
        return len(next(iter(self.eval_inputs.values())))

    def summary(self) -> dict[str, object]:
        return {"name": self.name, "description": self.description, "metric": str(self.metric),
                "variants": list(self.variants), "reference": self.reference,
                "n_eval": self.n_eval, "sha256": self.sha256, "source": self.source}


def _section(data: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k.removeprefix(prefix): v for k, v in data.items() if k.startswith(prefix)}


def write_data(path: Path, out: BuildOutput) -> None:
    """Write a recipe's arrays as one npz (no pickles) in the layout Workload reads."""
    arrays = {f"eval__{k}": v for k, v in out.eval_inputs.items()}
    arrays |= {f"calib__{k}": v for k, v in out.calib_inputs.items()}
    if out.eval_labels is not None:
        arrays["labels"] = out.eval_labels
    np.savez(path, **arrays)


def save_reference(root: Path, outputs: list[np.ndarray]) -> None:
    """Store the fp32 reference outputs (:mod:`workloads.reference`) beside the data."""
    np.savez(root / REFERENCE_FILE, **{f"out{i}": o for i, o in enumerate(outputs)})


def load_reference(root: Path, output_index: int) -> np.ndarray:
    with np.load(root / REFERENCE_FILE, allow_pickle=False) as npz:
        return npz[f"out{output_index}"]

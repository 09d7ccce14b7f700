"""ONNX → Relax: the import every TVM build, and every tuning child, starts from.

A build (:mod:`tuner.backends.tvm.backend`) and the child process that tunes its kernels
(:mod:`tuner.backends.tvm.tuning`) must import the same ONNX file into the same module, so
that the tuning tasks they extract have the same structural hashes; both call
:func:`import_onnx`.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from tuner.errors import TrialFailed, one_line

if TYPE_CHECKING:
    import onnx

ERROR_CHARS = 300


def short_error(error: BaseException) -> str:
    """A TVM error (importer, compiler, MetaSchedule) as one line of at most 300 characters."""
    return one_line(error)[:ERROR_CHARS]


def import_onnx(model: onnx.ModelProto, inputs: list[dict[str, Any]]) -> tuple[Any, str | None]:
    """Import into Relax; on failure retry once on a shape-inferred, constant-folded copy.

    Real exports compute Reshape targets from ``Shape`` ops, which TVM's importer only
    accepts once the batch is fixed and those chains are folded to constants. Returns the
    module and why the plain import failed (None if it did not), so the artifact says so.
    """
    from tvm.relax.frontend.onnx import from_onnx

    shapes = {spec["name"]: spec["shape"] for spec in inputs}
    dtypes = {spec["name"]: spec["dtype"] for spec in inputs}
    try:
        return from_onnx(model, shape_dict=shapes, dtype_dict=dtypes), None
    except Exception as first:  # the importer raises anything from KeyError to TVMError
        try:
            folded = _folded(model, shapes)
            return from_onnx(folded, shape_dict=shapes, dtype_dict=dtypes), short_error(first)
        except Exception as second:
            raise TrialFailed(f"TVM cannot import the model: {short_error(first)}; after shape "
                              f"inference and folding: {short_error(second)}",
                              stage="build") from first


def _folded(model: onnx.ModelProto, shapes: dict[str, list[int]]) -> onnx.ModelProto:
    """A copy with static input shapes, inferred shapes and constant-folded shape math."""
    import onnx
    import onnxscript.optimizer

    static = copy.deepcopy(model)
    for value in static.graph.input:
        if value.name in shapes:
            for dim, size in zip(value.type.tensor_type.shape.dim, shapes[value.name],
                                 strict=False):
                dim.dim_value = size
    return onnxscript.optimizer.optimize(onnx.shape_inference.infer_shapes(static))

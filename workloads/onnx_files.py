"""Loading and validating ONNX files before anything is built from them.

Validation happens up front so a bad model is a one-line :class:`WorkloadError` and
nothing gets cached: ``onnx.checker``, then an ONNX Runtime session (which is the real
judge of whether the installed runtime supports the opset and IR version).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuner.errors import WorkloadError, one_line

MAX_MODEL_BYTES = 2 * 1024**3  # protobuf's own limit for a single file

_ONNX_DTYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}


@dataclass(frozen=True)
class InputSpec:
    """One model input: name, numpy dtype, shape with ``None`` for symbolic dims."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_model_file(path: Path) -> list[InputSpec]:
    """Validate an ONNX file and return its input specs.

    Raises:
        WorkloadError: missing, oversized, corrupt or truncated file, checker failure, or a
            model the installed onnxruntime cannot load (opset/IR version, unknown op).
    """
    import onnx

    if not path.is_file():
        raise WorkloadError(f"model file {path} does not exist")
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise WorkloadError(f"model file {path} is larger than 2 GiB")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise WorkloadError(f"{path.name} is not a readable ONNX file "
                            f"(corrupt or truncated): {one_line(exc)}") from None
    if not model.graph.node:
        raise WorkloadError(f"{path.name} is not a readable ONNX model: the graph is empty")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise WorkloadError(f"{path.name} fails onnx.checker: {one_line(exc)[:300]}") from None
    return session_inputs(path)


def session_inputs(path: Path) -> list[InputSpec]:
    """Open ``path`` in onnxruntime (no optimizations) and return its input specs."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise WorkloadError(f"onnxruntime {ort.__version__} cannot load {path.name}: "
                            f"{one_line(exc)[:300]}") from None
    specs = []
    for node in session.get_inputs():
        if node.type not in _ONNX_DTYPES:
            raise WorkloadError(f"input {node.name!r} of {path.name} has unsupported type "
                                f"{node.type}")
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in node.shape)
        specs.append(InputSpec(node.name, np.dtype(_ONNX_DTYPES[node.type]), shape))
    return specs

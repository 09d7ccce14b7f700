"""Loading and validating ONNX files before anything is built from them.

Validation happens up front so a bad model is a one-line :class:`WorkloadError` and
nothing gets cached: a size cap, a refusal of external data (before anything could read a
file the model names, e.g. ``../../etc/passwd``), ``onnx.checker``, then an ONNX Runtime
session (which is the real judge of whether the installed runtime supports the opset and
IR version).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workloads.errors import WorkloadError, one_line
from workloads.layout import Declared

MAX_MODEL_BYTES_ENV = "PODIUM_MAX_MODEL_BYTES"
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


def byte_limit(env: str, default: int) -> int:
    """A size cap in bytes from ``env`` (a whole number), or ``default``."""
    text = os.environ.get(env, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise WorkloadError(f"{env}={text!r} is not a positive whole number of bytes")
    return value


def check_size(path: Path, kind: str, env: str, default: int) -> int:
    """Refuse a file over its cap (``env`` or ``default`` bytes); return the cap."""
    limit = byte_limit(env, default)
    size = path.stat().st_size
    if size > limit:
        raise WorkloadError(f"{kind} file {path.name} has {size} bytes, over the limit of "
                            f"{limit} ({env})")
    return limit


def check_model_file(path: Path, stored: Path
                     ) -> tuple[list[InputSpec], list[Declared], list[Declared]]:
    """Validate an ONNX file, store it at ``stored`` and return its inputs and outputs.

    An unnamed dynamic dim written as ``-1`` or ``0`` (older tf2onnx and keras2onnx, other
    converters, hand-edited graphs) is stored as a named symbolic dim, which every tool
    downstream understands (onnxruntime reads a ``0`` literally and refuses the data);
    a model without such dims is stored byte for byte.

    Raises:
        WorkloadError: missing, oversized, corrupt or truncated file, external data,
            checker failure, or a model the installed onnxruntime cannot load (opset/IR
            version, unknown op).
    """
    import onnx

    if not path.exists():
        raise WorkloadError(f"model file {path} does not exist")
    if not path.is_file():
        raise WorkloadError(f"model file {path} is not a regular file")
    check_size(path, "model", MAX_MODEL_BYTES_ENV, MAX_MODEL_BYTES)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise WorkloadError(f"{path.name} is not a readable ONNX file "
                            f"(corrupt or truncated): {one_line(exc)}") from None
    if not model.graph.node:
        raise WorkloadError(f"{path.name} is not a readable ONNX model: the graph is empty")
    refuse_external_data(model, path)
    _refuse_non_tensor_outputs(model, path)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise WorkloadError(f"{path.name} fails onnx.checker: {one_line(exc)[:300]}") from None
    if name_unknown_dims(model):
        onnx.save(model, str(stored))
    else:
        shutil.copyfile(path, stored)
    return session_io(stored, shown_as=path.name)


def name_unknown_dims(model) -> bool:
    """Give every graph input/output dim declared ``-1`` or ``0`` a symbolic name
    (``<value>_dim<axis>``), in place; True if any was renamed."""
    changed = False
    for value in [*model.graph.input, *model.graph.output]:
        if value.type.WhichOneof("value") != "tensor_type":
            continue
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_value") and dim.dim_value <= 0:
                dim.dim_param = _unknown_dim_name(value.name, axis)
                changed = True
    return changed


def _refuse_non_tensor_outputs(model, path: Path) -> None:
    """Quality is scored on tensors; a map or sequence output (scikit-learn's ZipMap) would
    pass every check here and then fail every trial at measurement."""
    for output in model.graph.output:
        kind = output.type.WhichOneof("value")
        if kind != "tensor_type":
            raise WorkloadError(
                f"{path.name}: output {output.name!r} is a {kind.removesuffix('_type')}, not a "
                f"tensor (a scikit-learn ZipMap? convert with options={{'zipmap': False}})")


def refuse_external_data(model, path: Path) -> None:
    """Refuse any tensor stored outside the file, naming paths that leave its folder.

    Runs on the proto loaded without external data, so neither the checker nor
    onnxruntime ever opens a file the model names.
    """
    import onnx

    for tensor in _all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        folder = path.resolve().parent
        target = (folder / location).resolve()
        if (not location or Path(location).is_absolute() or ".." in Path(location).parts
                or not target.is_relative_to(folder)):
            raise WorkloadError(f"{path.name}: tensor {tensor.name!r} names external data "
                                f"{location!r} outside the model's folder; refused")
        raise WorkloadError(f"{path.name} stores tensor {tensor.name!r} in an external data "
                            f"file ({location!r}), which is not supported; save the model "
                            "as a single file")


def _all_tensors(model) -> Iterator:
    """Every TensorProto of a model: initializers, attributes, subgraphs, functions."""
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from _node_tensors(node)


def _graph_tensors(graph) -> Iterator:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        yield from _node_tensors(node)


def _node_tensors(node) -> Iterator:
    for attribute in node.attribute:
        if attribute.HasField("t"):
            yield attribute.t
        yield from attribute.tensors
        if attribute.HasField("sparse_tensor"):
            yield from (attribute.sparse_tensor.values, attribute.sparse_tensor.indices)
        for sparse in attribute.sparse_tensors:
            yield from (sparse.values, sparse.indices)
        if attribute.HasField("g"):
            yield from _graph_tensors(attribute.g)
        for graph in attribute.graphs:
            yield from _graph_tensors(graph)


def session_io(path: Path, *, shown_as: str | None = None
               ) -> tuple[list[InputSpec], list[Declared], list[Declared]]:
    """Open ``path`` in onnxruntime (no optimizations): its input specs, and its inputs
    and its outputs as declared (named dynamic dims kept by name)."""
    import onnxruntime as ort

    shown_as = shown_as or path.name

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise WorkloadError(f"onnxruntime {ort.__version__} cannot load {shown_as}: "
                            f"{one_line(exc)[:300]}") from None
    specs = []
    for node in session.get_inputs():
        if node.type not in _ONNX_DTYPES:
            raise WorkloadError(f"input {node.name!r} of {shown_as} has unsupported type "
                                f"{node.type}")
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in node.shape)
        specs.append(InputSpec(node.name, np.dtype(_ONNX_DTYPES[node.type]), shape))
    inputs, outputs = ([Declared(node.name, tuple(_dim(node.name, axis, d)
                                                  for axis, d in enumerate(node.shape)))
                        for node in nodes]
                       for nodes in (session.get_inputs(), session.get_outputs()))
    return specs, inputs, outputs


def _dim(name: str, axis: int, value: int | str | None) -> int | str | None:
    """A dim as ORT reports it: a positive size, a symbolic name, or unknown (None) — which
    a name given by :func:`name_unknown_dims` still is."""
    if isinstance(value, int):
        return value if value > 0 else None
    return None if not value or value == _unknown_dim_name(name, axis) else value


def _unknown_dim_name(value: str, axis: int) -> str:
    return f"{value}_dim{axis}"

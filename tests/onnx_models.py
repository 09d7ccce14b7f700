"""Tiny ONNX models and data files built in tests (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _model(nodes, inputs, outputs, initializers) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "test", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    return model


def classifier(path: Path, *, features: int = 8, classes: int = 3, seed: int = 0,
               batch: int | str = "N") -> Path:
    """x[N, features] → MatMul → Relu → MatMul → probabilities[N, classes]."""
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.normal(size=(features, 16)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(16, classes)).astype(np.float32), "w2")
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)]
    onnx.save(_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                           [batch, features])],
                     [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT,
                                                    [batch, classes])], [w1, w2]), path)
    return path


def nan_model(path: Path) -> Path:
    """y = log(x) - log(x) + sqrt(-1): NaN for every input."""
    minus_one = numpy_helper.from_array(np.array([-1.0], np.float32), "m")
    nodes = [helper.make_node("Sqrt", ["m"], ["s"]),
             helper.make_node("Add", ["x", "s"], ["y"])]
    onnx.save(_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
                     [minus_one]), path)
    return path


def data(path: Path, *, rows: int = 40, features: int = 8, classes: int | None = 3,
         name: str = "x", dtype=np.float32) -> Path:
    rng = np.random.default_rng(1)
    arrays = {name: rng.normal(size=(rows, features)).astype(dtype)}
    if classes is not None:
        arrays["labels"] = rng.integers(0, classes, size=rows).astype(np.int64)
    np.savez(path, **arrays)
    return path


def check_exported_variant(path: Path, *, input_name: str, input_type: int,
                           input_dims: list, output_dims: list) -> onnx.ModelProto:
    """The checks every built-in variant passes: valid, opset 17, IR ≤ 10, named I/O shapes."""
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version <= 10
    assert {o.domain: o.version for o in model.opset_import}[""] == 17
    (inp,), (out,) = model.graph.input, model.graph.output
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert inp.name == input_name and inp.type.tensor_type.elem_type == input_type
    assert dims(inp) == input_dims
    assert out.name == "logits" and dims(out) == output_dims
    return model

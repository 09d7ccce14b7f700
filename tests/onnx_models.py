"""Tiny ONNX models and data files built in tests (nothing is downloaded)."""

from __future__ import annotations

import itertools
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


def fragile_mlp(model_path: Path, data_path: Path, *, hidden: int = 1024, features: int = 256,
                classes: int = 10, rows: int = 640, outlier: float = 50.0) -> tuple[Path, Path]:
    """A 3×1024 ReLU MLP whose head has one huge weight row that per-tensor int8 cannot hold.

    The row belongs to a hidden unit that is always 0 (its bias is -1 and its weights 0),
    so fp32 outputs are untouched, but the head's int8 weight scale becomes ``outlier``
    times too coarse and rounds the useful weights away: naive int8 loses agreement while
    keeping just the (cheap) head in fp32 recovers it. The 1024-wide layers make int8 pay
    off at batch 1. Inputs are noisy class centroids; the head is fitted by ridge
    regression on the fp32 features, so the fp32 classes have wide margins.
    """
    rng = np.random.default_rng(0)
    centroids = rng.normal(size=(classes, features)).astype(np.float32)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, classes, n)
        return (centroids[y] + 0.7 * rng.normal(size=(n, features))).astype(np.float32), y

    sizes = [features, hidden, hidden, hidden]
    weights = [(rng.normal(size=(i, o)) * np.sqrt(2 / i)).astype(np.float32)
               for i, o in itertools.pairwise(sizes)]
    biases = [np.full(hidden, 0.01, np.float32) for _ in weights]
    dead = 7
    weights[-1][:, dead] = 0.0
    biases[-1][dead] = -1.0
    x, y = sample(2000)
    for w, b in zip(weights, biases, strict=True):
        x = np.maximum(x @ w + b, 0)
    targets = np.eye(classes, dtype=np.float32)[y] * 4
    head = np.linalg.solve(x.T @ x + np.eye(hidden), x.T @ targets).astype(np.float32)
    head[dead, :] = outlier * np.abs(head).max()
    nodes, initializers, previous = [], [], "x"
    for i, (w, b) in enumerate(zip(weights, biases, strict=True), 1):
        initializers += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("MatMul", [previous, f"w{i}"], [f"m{i}"], name=f"fc{i}"),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"], name=f"bias{i}"),
                  helper.make_node("Relu", [f"a{i}"], [f"h{i}"], name=f"relu{i}")]
        previous = f"h{i}"
    initializers += [numpy_helper.from_array(head, "wo"),
                     numpy_helper.from_array(np.zeros(classes, np.float32), "bo")]
    nodes += [helper.make_node("MatMul", [previous, "wo"], ["mo"], name="head"),
              helper.make_node("Add", ["mo", "bo"], ["logits"], name="head_bias")]
    onnx.save(_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                           ["N", features])],
                     [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                                    ["N", classes])], initializers), model_path)
    np.savez(data_path, x=sample(rows)[0])
    return model_path, data_path


def _io(name: str, dims: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def _save_unchecked(path: Path, nodes, inputs, outputs, initializers=()) -> Path:
    graph = helper.make_graph(nodes, "test", inputs, outputs, list(initializers))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                ir_version=9), path)
    return path


def _external(tensor: TensorProto, location: str) -> TensorProto:
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in {"location": location, "offset": "0", "length": "96"}.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def external_data_model(path: Path, location: str, *, where: str = "initializer") -> Path:
    """x[N, 8] @ w[8, 3], with ``w`` stored in the external file ``location``.

    ``where`` puts ``w`` in the graph's initializers, in a Constant node's attribute, or
    in a Constant inside an If branch (a subgraph).
    """
    w = _external(numpy_helper.from_array(np.ones((8, 3), np.float32), "w"), location)
    matmul = helper.make_node("MatMul", ["x", "w"], ["y"])
    if where == "initializer":
        return _save_unchecked(path, [matmul], [_io("x", ["N", 8])], [_io("y", ["N", 3])], [w])
    constant = helper.make_node("Constant", [], ["w"], value=w)
    if where == "attribute":
        return _save_unchecked(path, [constant, matmul], [_io("x", ["N", 8])],
                               [_io("y", ["N", 3])])
    branch = helper.make_graph([constant], "branch", [], [_io("w", [8, 3])])
    condition = numpy_helper.from_array(np.array(True), "c")
    nodes = [helper.make_node("If", ["c"], ["w"], then_branch=branch, else_branch=branch),
             matmul]
    return _save_unchecked(path, nodes, [_io("x", ["N", 8])], [_io("y", ["N", 3])],
                           [condition])


def huge_allocation_model(path: Path, *, elements: tuple[int, int] = (2**20, 2**20)) -> Path:
    """A valid graph that asks for an absurd tensor (4 TiB by default) to compute y = x + s."""
    shape = numpy_helper.from_array(np.array(elements, np.int64), "shape")
    one = numpy_helper.from_array(np.array([1.0], np.float32))
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"], value=one),
             helper.make_node("ReduceSum", ["big"], ["s"], keepdims=0),
             helper.make_node("Add", ["x", "s"], ["y"])]
    return _save_unchecked(path, nodes, [_io("x", ["N", 4])], [_io("y", ["N", 4])], [shape])


def relu_model(path: Path, dims: list) -> Path:
    """y = relu(x) with ``x`` and ``y`` declared as ``dims`` (unchecked: dims may be absurd)."""
    return _save_unchecked(path, [helper.make_node("Relu", ["x"], ["y"])],
                           [_io("x", dims)], [_io("y", dims)])


def wide_model(path: Path, *, width: int = 2**16) -> Path:
    """x[N, 8] → Tile to [N, 8·width] → ReduceSum → [N, 1]: memory grows with the batch.

    Each row needs 8·width floats (2 MiB by default); a worker measuring a batch of 1024
    needs 2 GiB, so a smaller memory limit stops it.
    """
    repeats = numpy_helper.from_array(np.array([1, width], np.int64), "repeats")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [helper.make_node("Tile", ["x", "repeats"], ["wide"]),
             helper.make_node("ReduceSum", ["wide", "axes"], ["y"], keepdims=1)]
    onnx.save(_model(nodes, [_io("x", ["N", 8])], [_io("y", ["N", 1])], [repeats, axes]), path)
    return path


def one_hot_mixer(path: Path) -> Path:
    """x[N,8] float and ids[N] int64 → OneHot → Cast(to=float) → MatMul, added to x's
    MatMul → Relu → MatMul → y[N,4]: an integer path cast to float, as exporters write
    one-hot embeddings and masks (fp16 conversion used to leave its Cast mistyped)."""
    rng = np.random.default_rng(0)

    def weights(name: str, *shape: int) -> TensorProto:
        return numpy_helper.from_array((rng.normal(size=shape) * 0.3).astype(np.float32), name)

    nodes = [helper.make_node("OneHot", ["ids", "depth", "values"], ["hot"], name="one_hot"),
             helper.make_node("Cast", ["hot"], ["hot_f"], name="one_hot_/Cast_1",
                              to=TensorProto.FLOAT),
             helper.make_node("MatMul", ["hot_f", "we"], ["embedded"], name="embed"),
             helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
             helper.make_node("Add", ["h", "embedded"], ["s"], name="add"),
             helper.make_node("Relu", ["s"], ["r"], name="relu"),
             helper.make_node("MatMul", ["r", "w2"], ["y"], name="fc2")]
    initializers = [numpy_helper.from_array(np.array(5, np.int64), "depth"),
                    numpy_helper.from_array(np.array([0, 1], np.int64), "values"),
                    weights("we", 5, 16), weights("w1", 8, 16), weights("w2", 16, 4)]
    onnx.save(_model(nodes, [_io("x", ["N", 8]),
                             helper.make_tensor_value_info("ids", TensorProto.INT64, ["N"])],
                     [_io("y", ["N", 4])], initializers), path)
    return path

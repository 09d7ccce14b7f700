"""Where inputs and outputs carry the batch: inference from declared dims + data, the user's
hints, the canonical round trip, and user models run end to end through ``optimize``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import workloads
from tuner.cli import main
from tuner.errors import WorkloadError
from workloads.batch_axes import infer_inputs
from workloads.layout import CONSTANT, UNSCORED, Declared, Layout, parse_hints

RNG = np.random.default_rng(7)


def _infer(dims: dict[str, tuple], arrays: dict[str, np.ndarray], hints=None):
    declared = [Declared(name, shape) for name, shape in dims.items()]
    return infer_inputs(declared, arrays, hints or {}, model="m.onnx", data="d.npz")


def _zeros(*shape, dtype=np.float32) -> np.ndarray:
    return np.zeros(shape, dtype)


def test_hints_parse_and_refuse_in_one_line():
    assert parse_hints("state:batch_axis=1, sr:constant", kind="inputs") == {
        "state": 1, "sr": CONSTANT}
    assert parse_hints("stateN:unscored,y:axis=0", kind="outputs") == {"stateN": UNSCORED,
                                                                       "y": 0}
    assert parse_hints(None, kind="inputs") == {}
    for bad in ("state", "state:batch_axis=x", "state:unscored", ":constant"):
        with pytest.raises(WorkloadError, match="--inputs takes NAME:batch_axis=K"):
            parse_hints(bad, kind="inputs")


@pytest.mark.parametrize(("dims", "arrays", "hints", "axes", "rows"), [
    # today's convention: axis 0, even where spatial dims tie with the row count
    ({"x": (None, 3, None, None)}, {"x": _zeros(16, 3, 16, 16)}, None, {"x": 0}, 16),
    # a recurrent state: the only dynamic dim is its batch
    ({"x": ("N", 512), "state": (2, "N", 128), "sr": ()},
     {"x": _zeros(20, 512), "state": _zeros(2, 20, 128), "sr": np.array(16000)}, None,
     {"x": 0, "state": 1, "sr": None}, 20),
    # every dim of the state dynamic: the row count the inputs agree on decides
    ({"x": (None, 512), "state": (None, None, 128)},
     {"x": _zeros(20, 512), "state": _zeros(2, 20, 128)}, None, {"x": 0, "state": 1}, 20),
    # exported with a fixed batch of 1: the fixed dim the data does not match is the batch
    ({"x": (1, 576)}, {"x": _zeros(30, 576)}, None, {"x": 0}, 30),
    # a fixed mask given once, beside a batched input
    ({"x": (None, 8), "mask": (8, 8)}, {"x": _zeros(10, 8), "mask": _zeros(8, 8)}, None,
     {"x": 0, "mask": None}, 10),
    # a tie between two non-zero axes, settled by the batch dim's name
    ({"x": ("batch", 4), "s": (2, "batch", "t")}, {"x": _zeros(6, 4), "s": _zeros(2, 6, 6)},
     None, {"x": 0, "s": 1}, 6),
    # what the user said wins
    ({"x": (None, None), "sr": (None,)}, {"x": _zeros(10, 4), "sr": _zeros(10)},
     {"x": 1, "sr": CONSTANT}, {"x": 1, "sr": None}, 4),
])
def test_batch_axes_are_inferred_where_the_data_decides(dims, arrays, hints, axes, rows):
    layout, found_rows = _infer(dims, arrays, hints)
    assert layout.inputs == axes and found_rows == rows
    assert set(layout.constants) == {name for name, axis in axes.items() if axis is None}


@pytest.mark.parametrize(("dims", "arrays", "fragment"), [
    ({"x": (None, 512), "state": (None, None, 128)},
     {"x": _zeros(2, 512), "state": _zeros(2, 2, 128)}, None),  # axis 0 wins the tie
    ({"x": (2, None, None)}, {"x": _zeros(2, 8, 8)}, "--inputs 'x:batch_axis=K'"),
    ({"x": (None, 4), "y": (None, 4)}, {"x": _zeros(10, 4), "y": _zeros(7, 4)},
     "different batch sizes"),
    ({"x": (None, 4), "sr": ()}, {"x": _zeros(10, 4), "sr": _zeros(10)},
     "is a scalar, so it cannot take a batch"),
    ({"x": (None, 4)}, {"x": _zeros(10, 5)}, "has shape [10, 5], m.onnx expects ['?', 4]"),
    ({"x": (None, 4), "mask": (None, 8)}, {"x": _zeros(10, 4), "mask": _zeros(3, 8)},
     "'mask:constant'"),
])
def test_what_the_data_cannot_decide_names_the_flag(dims, arrays, fragment):
    if fragment is None:
        assert _infer(dims, arrays)[0].inputs == {"x": 0, "state": 0}
        return
    with pytest.raises(WorkloadError) as error:
        _infer(dims, arrays)
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_feed_and_canonical_round_trip():
    layout = Layout(inputs={"x": 0, "state": 1, "sr": None},
                    outputs={"y": 0, "stateN": 1, "const": None},
                    constants={"sr": np.array(16000)})
    rows = {"x": RNG.normal(size=(5, 3)), "state": RNG.normal(size=(5, 2, 4))}
    feed = layout.feed(rows)
    assert feed["state"].shape == (2, 5, 4) and feed["sr"].shape == ()
    assert feed["state"].flags.c_contiguous
    np.testing.assert_array_equal(feed["state"][:, 3], rows["state"][3])

    def run(inputs):
        return [inputs["x"] * 2, inputs["state"] + 1, np.arange(3)]

    y, state, const = layout.wrap(run)(rows)
    np.testing.assert_array_equal(y, rows["x"] * 2)
    np.testing.assert_array_equal(state, rows["state"] + 1)
    assert const.shape == (5, 3)
    assert layout.scored(3) == [0, 1]
    assert Layout.batch_first(["x"]).wrap(run) is run  # no cost for the common case


def _recurrent(path: Path, state_dims: list, *, n: int = 48) -> tuple[Path, Path]:
    """x [N, 512], state [2, N, 128] (batch on axis 1), an int64 scalar sample rate →
    y [N, 10] (class scores) and stateN [2, N, 128]."""
    w = numpy_helper.from_array((RNG.normal(size=(512, 128)) * 0.05).astype(np.float32), "W")
    u = numpy_helper.from_array((RNG.normal(size=(128, 128)) * 0.05).astype(np.float32), "U")
    v = numpy_helper.from_array(RNG.normal(size=(128, 10)).astype(np.float32), "V")
    scale = numpy_helper.from_array(np.array(1 / 16000, np.float32), "k")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]),
             helper.make_node("MatMul", ["state", "U"], ["su"]),
             helper.make_node("Add", ["su", "xw"], ["pre"]),
             helper.make_node("Cast", ["sr"], ["srf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["srf", "k"], ["gain"]),
             helper.make_node("Mul", ["pre", "gain"], ["scaled"]),
             helper.make_node("Tanh", ["scaled"], ["stateN"]),
             helper.make_node("ReduceMean", ["stateN"], ["mean"], axes=[0], keepdims=0),
             helper.make_node("MatMul", ["mean", "V"], ["y"])]
    graph = helper.make_graph(
        nodes, "recurrent",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 512]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, state_dims),
         helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, 10]),
         helper.make_tensor_value_info("stateN", TensorProto.FLOAT, state_dims)],
        [w, u, v, scale])
    model = path / "recurrent.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    data = path / "recurrent.npz"
    np.savez(data, x=RNG.normal(size=(n, 512)).astype(np.float32),
             state=RNG.normal(size=(2, n, 128)).astype(np.float32),
             sr=np.array(16000, np.int64))
    return model, data


def _image(path: Path) -> tuple[Path, Path]:
    """An image classifier declared ``[-1, 3, -1, -1]`` → ``[-1, 5]``, as older exporters write."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("MatMul", ["f", "d"], ["y"])]
    weights = [numpy_helper.from_array(RNG.normal(size=(8, 3, 3, 3)).astype(np.float32), "w"),
               numpy_helper.from_array(RNG.normal(size=(8, 5)).astype(np.float32), "d")]
    graph = helper.make_graph(
        nodes, "image", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 3, -1, -1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, 5])], weights)
    model = path / "cls.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    data = path / "cls.npz"
    np.savez(data, x=RNG.normal(size=(40, 3, 12, 12)).astype(np.float32))
    return model, data


def test_recurrent_model_layout_scores_every_batched_output(tmp_path):
    model, data = _recurrent(tmp_path, [2, "N", 128])
    wl = workloads.from_files(model, data)
    assert wl.layout.inputs == {"x": 0, "state": 1, "sr": None}
    assert wl.layout.outputs == {"y": 0, "stateN": 1}
    assert wl.scored_outputs == [0, 1] and set(wl.constants) == {"sr"}
    assert wl.eval_inputs["state"].shape[1:] == (2, 128)  # canonical: rows first
    unscored = workloads.from_files(model, data, outputs={"stateN": UNSCORED})
    assert unscored.scored_outputs == [0] and unscored.sha256 != wl.sha256


def test_zero_and_minus_one_dims_are_dynamic(tmp_path):
    model, data = _recurrent(tmp_path, [2, 0, 128])
    stored = onnx.load(workloads.from_files(model, data).model_path())
    dims = [d.dim_param or d.dim_value for d in stored.graph.input[1].type.tensor_type.shape.dim]
    assert dims == [2, "state_dim1", 128]


def test_user_models_run_through_optimize_with_inputs_said_once(tmp_path):
    """The issue's two end-to-end cases: a ``[-1, 3, '?', '?']`` classifier, and a recurrent
    model (state ``[-1, -1, 128]``, batch on axis 1) described once on the command line.
    (Every other backend runs these shapes in tests/test_conformance.py.)"""
    backend = "ort"
    image = _image(tmp_path)
    recurrent = _recurrent(tmp_path, [-1, -1, 128])
    runs = [(image, []), (recurrent, ["--inputs", "state:batch_axis=1,sr:constant"])]
    for index, ((model, data), extra) in enumerate(runs):
        out = tmp_path / f"result{index}.json"
        code = main(["optimize", "--model", str(model), "--data", str(data), *extra,
                     "--trials", "2", "--no-warm-start", "--constraint",
                     "quality_ratio >= 0.99", "--space",
                     json.dumps({"backend": backend, "precision": "fp32", "batch": [1, 8]}),
                     "--storage", f"sqlite:///{tmp_path / 's.db'}", "--json", str(out)])
        result = json.loads(out.read_text())
        assert code in (0, 3) and result["n_failed"] == 0, result
        finished = [result["baseline"], *result["trials"]]
        assert all(t["state"] == "complete" for t in finished)
        assert all(t["metrics"]["quality_ratio"] == pytest.approx(1.0, abs=1e-5)
                   for t in finished)  # fp32: a state output's rounding, nothing more
        assert any(t["config"]["backend"] == backend for t in finished)

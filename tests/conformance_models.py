"""The conformance set: model signatures every backend must run as user models.

Each :class:`Case` writes ``model.onnx`` and ``data.npz`` into a folder, says which
``--inputs`` / ``--outputs`` it needs, which backends must pass it, and the layout
:func:`workloads.from_files` must infer. The models are tiny (weights from a seeded rng,
nothing downloaded) but have the shapes real exports have: ``-1`` / ``0`` / named dynamic
dims, several inputs of different dtypes, old and new opsets, 2-D to 4-D outputs, several
outputs, a recurrent state batched on axis 1, a scalar constant, a fixed batch of 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROWS = 24  # no other dim has this size: the batch is a coincidence only where a case says so
FLOAT, INT64 = TensorProto.FLOAT, TensorProto.INT64
Dims = Sequence[int | str]
Build = Callable[[Path], tuple[Path, Path]]


@dataclass(frozen=True)
class Case:
    """One model signature: how to build it, what to say about it, what must come out.

    ``inputs`` / ``outputs`` are the ``--inputs`` / ``--outputs`` texts (None: no flag);
    ``backends`` must complete a trial at quality 1.0. ``layout_inputs`` and
    ``layout_outputs`` map names to batch axes (None: constant / not batched), ``unscored``
    and ``scored`` (output indices, the primary first) are what the workload reports.
    """

    name: str
    build: Build
    layout_inputs: dict[str, int | None]
    layout_outputs: dict[str, int | None]
    scored: list[int]
    inputs: str | None = None
    outputs: str | None = None
    unscored: tuple[str, ...] = ()
    backends: tuple[str, ...] = ("ort", "tvm", "openvino")

    def flags(self) -> list[str]:
        flags = [] if self.inputs is None else ["--inputs", self.inputs]
        return flags + ([] if self.outputs is None else ["--outputs", self.outputs])


@dataclass(frozen=True)
class Refusal:
    """A model + data that ``podium trial run`` must refuse with exit 2 and one line
    containing every string of ``says``."""

    name: str
    build: Build
    says: tuple[str, ...]
    flags: list[str] = field(default_factory=list)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _weight(rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> TensorProto:
    scale = 1.0 / np.sqrt(shape[0] if len(shape) < 4 else int(np.prod(shape[1:])))
    return numpy_helper.from_array((rng.normal(size=shape) * scale).astype(np.float32), name)


def _const(name: str, value: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _io(name: str, elem: int, dims: Dims) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, list(dims))


def _save(folder: Path, nodes: list, inputs: list, outputs: list, weights: list,
          data: dict[str, np.ndarray], *, opset: int = 17) -> tuple[Path, Path]:
    """Check and write ``model.onnx`` (at the lowest IR version ``opset`` allows, as an
    exporter targeting that opset would) and ``data.npz``."""
    opsets = [helper.make_opsetid("", opset)]
    graph = helper.make_graph(nodes, "conformance", inputs, outputs, weights)
    model = helper.make_model(graph, opset_imports=opsets,
                              ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / "model.onnx")
    np.savez(folder / "data.npz", **data)
    return folder / "model.onnx", folder / "data.npz"


def _reduce_mean(data: str, out: str, axes: list[int], opset: int, weights: list) -> object:
    """ReduceMean over ``axes`` without keepdims: ``axes`` is an attribute up to opset 17,
    an input from 18 on."""
    if opset < 18:
        return helper.make_node("ReduceMean", [data], [out], axes=axes, keepdims=0)
    weights.append(_const(f"{out}_axes", np.array(axes, np.int64)))
    return helper.make_node("ReduceMean", [data, f"{out}_axes"], [out], keepdims=0)


def _images(rng: np.random.Generator, rows: int = ROWS) -> np.ndarray:
    return rng.normal(size=(rows, 3, 8, 8)).astype(np.float32)


def conv_classifier(folder: Path, *, dims: Dims, out_dims: Dims) -> tuple[Path, Path]:
    """x[N, 3, H, W] → Conv 3×3 → Relu → GlobalAveragePool → Flatten → Gemm → y[N, 5]."""
    rng = _rng(1)
    weights = [_weight(rng, "w", (4, 3, 3, 3)), _const("b", np.zeros(4, np.float32)),
               _weight(rng, "fc", (4, 5)), _const("fc_b", np.full(5, 0.1, np.float32))]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "fc", "fc_b"], ["y"])]
    return _save(folder, nodes, [_io("x", FLOAT, dims)], [_io("y", FLOAT, out_dims)], weights,
                 {"x": _images(rng)})


def features_and_tokens(folder: Path) -> tuple[Path, Path]:
    """features[N, 6] float32 and tokens[N, 4] int64 (looked up in an embedding and
    averaged) → logits[N, 3]."""
    rng = _rng(2)
    weights = [_weight(rng, "embedding", (20, 8)), _weight(rng, "wf", (6, 8)),
               _weight(rng, "head", (8, 3))]
    nodes = [helper.make_node("Gather", ["embedding", "tokens"], ["e"], axis=0),
             _reduce_mean("e", "pooled", [1], 17, weights),
             helper.make_node("MatMul", ["features", "wf"], ["f"]),
             helper.make_node("Add", ["f", "pooled"], ["s"]),
             helper.make_node("Relu", ["s"], ["r"]),
             helper.make_node("MatMul", ["r", "head"], ["logits"])]
    data = {"features": rng.normal(size=(ROWS, 6)).astype(np.float32),
            "tokens": rng.integers(0, 20, size=(ROWS, 4)).astype(np.int64)}
    return _save(folder, nodes, [_io("features", FLOAT, ["N", 6]), _io("tokens", INT64, ["N", 4])],
                 [_io("logits", FLOAT, ["N", 3])], weights, data)


def mlp(folder: Path, *, opset: int) -> tuple[Path, Path]:
    """x[N, 4, 8] → ReduceMean over axis 1 → MatMul/Add/Relu → MatMul/Add → Softmax →
    probabilities[N, 3], written for ``opset``: ReduceMean takes its axes as an attribute
    before 18 and as an input from 18; Softmax before 13 flattens to 2-D around ``axis``,
    which for this 2-D input is the same as the later per-axis Softmax on the last axis."""
    rng = _rng(3)
    weights = [_weight(rng, "w1", (8, 16)), _const("b1", np.full(16, 0.05, np.float32)),
               _weight(rng, "w2", (16, 3)), _const("b2", np.zeros(3, np.float32))]
    nodes = [_reduce_mean("x", "m", [1], opset, weights),
             helper.make_node("MatMul", ["m", "w1"], ["h"]),
             helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["o"]),
             helper.make_node("Add", ["o", "b2"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"],
                              axis=1 if opset < 13 else -1)]
    return _save(folder, nodes, [_io("x", FLOAT, ["N", 4, 8])],
                 [_io("probabilities", FLOAT, ["N", 3])], weights,
                 {"x": rng.normal(size=(ROWS, 4, 8)).astype(np.float32)}, opset=opset)


def sequence(folder: Path) -> tuple[Path, Path]:
    """x[N, T, 8] → MatMul/Add → Tanh → y[N, T, 8]: a 3-D output, time dim dynamic."""
    rng = _rng(4)
    weights = [_weight(rng, "w", (8, 8)), _const("b", np.full(8, 0.1, np.float32))]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Add", ["h", "b"], ["hb"]),
             helper.make_node("Tanh", ["hb"], ["y"])]
    return _save(folder, nodes, [_io("x", FLOAT, ["N", "T", 8])],
                 [_io("y", FLOAT, ["N", "T", 8])], weights,
                 {"x": rng.normal(size=(ROWS, 6, 8)).astype(np.float32)})


def feature_map(folder: Path) -> tuple[Path, Path]:
    """x[N, 3, 8, 8] → Conv 3×3 → Tanh → y[N, 4, 8, 8]: a 4-D output."""
    rng = _rng(5)
    weights = [_weight(rng, "w", (4, 3, 3, 3)), _const("b", np.full(4, 0.1, np.float32))]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Tanh", ["c"], ["y"])]
    return _save(folder, nodes, [_io("x", FLOAT, ["N", 3, 8, 8])],
                 [_io("y", FLOAT, ["N", 4, 8, 8])], weights, {"x": _images(rng)})


def two_outputs(folder: Path, *, second: str, second_width: int,
                second_first: bool) -> tuple[Path, Path]:
    """x[N, 8] → shared hidden layer → probabilities[N, 3] and ``second``[N, width]
    (Tanh features), in the order ``second_first`` says."""
    rng = _rng(6)
    weights = [_weight(rng, "w1", (8, 16)), _weight(rng, "head", (16, 3)),
               _weight(rng, "side", (16, second_width))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "head"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
             helper.make_node("MatMul", ["r", "side"], ["s"]),
             helper.make_node("Tanh", ["s"], [second])]
    outs = [_io("probabilities", FLOAT, ["N", 3]), _io(second, FLOAT, ["N", second_width])]
    return _save(folder, nodes, [_io("x", FLOAT, ["N", 8])], outs[::-1] if second_first else outs,
                 weights, {"x": _rng(7).normal(size=(ROWS, 8)).astype(np.float32)})


def recurrent(folder: Path, *, state_dims: Dims = (2, "N", 128), rows: int = ROWS,
              layers: int = 2, hidden: int = 128) -> tuple[Path, Path]:
    """One step of a stacked recurrent cell: x[N, 512], state[layers, N, 128] (batch on
    axis 1) and an int64 scalar sample rate ``sr`` → y[N, 10] and stateN (declared like
    the state).

    ``state_dims`` is how the state is declared; ``rows``, ``layers`` and ``hidden`` size
    the data only (``layers == rows`` makes the state's batch axis undecidable from the
    data; a ``hidden`` other than 128 is a refusal case)."""
    rng = _rng(8)
    weights = [_weight(rng, "wx", (512, 128)), _weight(rng, "ws", (128, 128)),
               _weight(rng, "wy", (128, 10)), _weight(rng, "w_sr", (128,)),
               _const("per_hz", np.array(1 / 16000, np.float32)),
               _const("decay", np.array(0.5, np.float32)),
               _const("layer_axis", np.array([0], np.int64))]
    nodes = [_reduce_mean("state", "s", [0], 17, weights),
             helper.make_node("Cast", ["sr"], ["sr_f"], to=FLOAT),
             helper.make_node("Mul", ["sr_f", "per_hz"], ["sr_n"]),
             helper.make_node("Mul", ["sr_n", "w_sr"], ["sr_bias"]),
             helper.make_node("MatMul", ["x", "wx"], ["xa"]),
             helper.make_node("MatMul", ["s", "ws"], ["sa"]),
             helper.make_node("Add", ["xa", "sa"], ["pre"]),
             helper.make_node("Add", ["pre", "sr_bias"], ["pre_sr"]),
             helper.make_node("Tanh", ["pre_sr"], ["h"]),
             helper.make_node("MatMul", ["h", "wy"], ["y"]),
             helper.make_node("Unsqueeze", ["h", "layer_axis"], ["h1"]),
             helper.make_node("Mul", ["state", "decay"], ["kept"]),
             helper.make_node("Add", ["kept", "h1"], ["stateN"])]
    data = {"x": rng.normal(size=(rows, 512)).astype(np.float32),
            "state": rng.normal(size=(layers, rows, hidden)).astype(np.float32),
            "sr": np.array(16000, np.int64)}
    return _save(folder, nodes,
                 [_io("x", FLOAT, ["N", 512]), _io("state", FLOAT, state_dims),
                  _io("sr", INT64, [])],
                 [_io("y", FLOAT, ["N", 10]), _io("stateN", FLOAT, state_dims)], weights, data)


def gru(folder: Path) -> tuple[Path, Path]:
    """The recurrent signature as exporters write it, with the ONNX ``GRU`` op: x[N, 512]
    as one time step, a bidirectional state[2, N, 128] (``initial_h``: batch on axis 1)
    and an int64 scalar ``sr`` → y[N, 10] and stateN[2, N, 128] (``Y_h``)."""
    rng = _rng(11)
    weights = [_weight(rng, "w", (2, 384, 512)), _weight(rng, "r", (2, 384, 128)),
               _const("b", np.zeros((2, 768), np.float32)), _weight(rng, "wy", (128, 10)),
               _weight(rng, "w_sr", (10,)), _const("per_hz", np.array(1 / 16000, np.float32)),
               _const("time_axis", np.array([0], np.int64))]
    nodes = [helper.make_node("Unsqueeze", ["x", "time_axis"], ["xt"]),
             helper.make_node("GRU", ["xt", "w", "r", "b", "", "state"], ["", "stateN"],
                              hidden_size=128, direction="bidirectional"),
             _reduce_mean("stateN", "h", [0], 17, weights),
             helper.make_node("MatMul", ["h", "wy"], ["hy"]),
             helper.make_node("Cast", ["sr"], ["sr_f"], to=FLOAT),
             helper.make_node("Mul", ["sr_f", "per_hz"], ["sr_n"]),
             helper.make_node("Mul", ["sr_n", "w_sr"], ["sr_bias"]),
             helper.make_node("Add", ["hy", "sr_bias"], ["y"])]
    data = {"x": rng.normal(size=(ROWS, 512)).astype(np.float32),
            "state": rng.normal(size=(2, ROWS, 128)).astype(np.float32),
            "sr": np.array(16000, np.int64)}
    return _save(folder, nodes,
                 [_io("x", FLOAT, ["N", 512]), _io("state", FLOAT, [2, "N", 128]),
                  _io("sr", INT64, [])],
                 [_io("y", FLOAT, ["N", 10]), _io("stateN", FLOAT, [2, "N", 128])], weights, data)


def linear(folder: Path, *, dims: Dims, out_dims: Dims, features: int,
           x_cols: int | None = None) -> tuple[Path, Path]:
    """x[N, features] → MatMul → Softmax → y[N, 10]; ``x_cols`` overrides the data's
    feature count (a mismatch is a refusal case)."""
    rng = _rng(9)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["y"], axis=-1)]
    data = {"x": rng.normal(size=(ROWS, x_cols or features)).astype(np.float32)}
    return _save(folder, nodes, [_io("x", FLOAT, dims)], [_io("y", FLOAT, out_dims)],
                 [_weight(rng, "w", (features, 10))], data)


def masked(folder: Path) -> tuple[Path, Path]:
    """x[N, 8] times a mask declared [-1, 8] and given once as [1, 8] → y[N, 3]."""
    rng = _rng(10)
    nodes = [helper.make_node("Mul", ["x", "mask"], ["xm"]),
             helper.make_node("MatMul", ["xm", "w"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["y"], axis=-1)]
    data = {"x": rng.normal(size=(ROWS, 8)).astype(np.float32),
            "mask": np.array([[1, 1, 0, 1, 1, 0, 1, 1]], np.float32)}
    return _save(folder, nodes, [_io("x", FLOAT, ["N", 8]), _io("mask", FLOAT, [-1, 8])],
                 [_io("y", FLOAT, ["N", 3])], [_weight(rng, "w", (8, 3))], data)


NEWEST_OPSET = onnx.defs.onnx_opset_version()  # onnxruntime loads it too (checked in a test)
OPSETS = sorted({11, 13, 17, NEWEST_OPSET})
_RECURRENT_IN = {"x": 0, "state": 1, "sr": None}
_RECURRENT_OUT = {"y": 0, "stateN": 1}
# A state declared [-1, -1, 128] with 2 layers: only axis 1 has the rows, the data decides.
_UNKNOWN_STATE = {"state_dims": (-1, -1, 128)}
# As many layers as rows: nothing in the data tells which axis of the state is the batch,
# so it takes --inputs (and without it must be refused, not guessed).
_AMBIGUOUS = {"state_dims": (-1, -1, 128), "rows": 4, "layers": 4}

CASES: list[Case] = [
    Case("minus1_dims", lambda f: conv_classifier(f, dims=[-1, 3, -1, -1], out_dims=[-1, 5]),
         {"x": 0}, {"y": 0}, [0]),
    Case("symbolic_dims",
         lambda f: conv_classifier(f, dims=["batch", 3, "h", "w"], out_dims=["batch", 5]),
         {"x": 0}, {"y": 0}, [0]),
    Case("float_and_int64_inputs", features_and_tokens, {"features": 0, "tokens": 0},
         {"logits": 0}, [0]),
    *(Case(f"opset{opset}", lambda f, opset=opset: mlp(f, opset=opset), {"x": 0},
           {"probabilities": 0}, [0]) for opset in OPSETS),
    Case("output_3d_sequence", sequence, {"x": 0}, {"y": 0}, [0]),
    Case("output_4d_feature_map", feature_map, {"x": 0}, {"y": 0}, [0]),
    Case("two_outputs_aux_unscored",
         lambda f: two_outputs(f, second="aux", second_width=4, second_first=True),
         {"x": 0}, {"aux": 0, "probabilities": 0}, [1], outputs="aux:unscored",
         unscored=("aux",)),
    Case("two_outputs_both_scored",
         lambda f: two_outputs(f, second="embedding", second_width=6, second_first=False),
         {"x": 0}, {"probabilities": 0, "embedding": 0}, [0, 1]),
    Case("recurrent_state_axis1", recurrent, _RECURRENT_IN, _RECURRENT_OUT, [0, 1]),
    Case("recurrent_state_unscored", recurrent, _RECURRENT_IN, _RECURRENT_OUT, [0],
         outputs="stateN:unscored", unscored=("stateN",)),
    Case("recurrent_unknown_state_dims", lambda f: recurrent(f, **_UNKNOWN_STATE),
         _RECURRENT_IN, _RECURRENT_OUT, [0, 1]),
    Case("recurrent_ambiguous_state_flagged", lambda f: recurrent(f, **_AMBIGUOUS),
         _RECURRENT_IN, _RECURRENT_OUT, [0, 1], inputs="state:batch_axis=1"),
    # TVM's ONNX importer has no GRU (nor LSTM, RNN): the build must fail cleanly.
    Case("recurrent_gru_op", gru, _RECURRENT_IN, _RECURRENT_OUT, [0, 1],
         backends=("ort", "openvino")),
    Case("zero_as_unknown_batch",
         lambda f: linear(f, dims=[0, 16], out_dims=[0, 10], features=16),
         {"x": 0}, {"y": 0}, [0]),
    Case("fixed_batch_1", lambda f: linear(f, dims=[1, 576], out_dims=[1, 10], features=576),
         {"x": 0}, {"y": 0}, [0]),
    Case("constant_mask", masked, {"x": 0, "mask": None}, {"y": 0}, [0],
         inputs="mask:constant"),
]

REFUSALS: list[Refusal] = [
    Refusal("ambiguous_state_without_flag", lambda f: recurrent(f, **_AMBIGUOUS),
            ("--inputs", "state")),
    Refusal("mask_without_flag", masked, ("--inputs",)),
    Refusal("feature_dim_mismatch",
            lambda f: linear(f, dims=["N", 16], out_dims=["N", 10], features=16, x_cols=15),
            ("'x'", "16")),
    Refusal("state_hidden_mismatch", lambda f: recurrent(f, hidden=100), ("'state'", "128")),
]

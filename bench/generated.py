"""ONNX models generated here, for benchmarks that need workloads beyond the built-ins.

Each builder writes ``model.onnx`` and ``data.npz`` (inputs only, so quality is top-1
agreement with the fp32 model) into a folder and returns a user workload through
:func:`workloads.from_files`, exactly as a user's ``--model/--data`` would arrive. Weights
are seeded and scaled (He initialisation) so activations neither vanish nor explode; the
models differ in kind (dense, convolutional, attention) and size on purpose.

    >>> from bench.generated import GENERATED, build  # doctest: +SKIP
    >>> workload = build("gen-mlp-wide", Path("/tmp/gen"))  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import workloads
from workloads.base import Workload

OPSET = 17
ROWS = 320
VOCAB = 1000


class _Graph:
    """A tiny graph builder: named nodes, seeded He-initialised weights."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}{self._count}"

    def weight(self, shape: tuple[int, ...], fan_in: int, scale: float = 1.0) -> str:
        name = self.name("w")
        value = self.rng.normal(0.0, scale * np.sqrt(2.0 / fan_in), size=shape)
        self.weights.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def const(self, value: np.ndarray) -> str:
        name = self.name("c")
        self.weights.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs: object) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def dense(self, x: str, n_in: int, n_out: int, relu: bool = True,
              trained: tuple[np.ndarray, np.ndarray] | None = None) -> str:
        """MatMul + Add (+ ReLU): He-initialised with zero bias, or ``trained`` (weights,
        bias) as they are."""
        w = (self.weight((n_in, n_out), n_in) if trained is None
             else self.const(trained[0].astype(np.float32)))
        y = self.op("MatMul", [x, w])
        bias = (np.zeros(n_out, np.float32) if trained is None
                else trained[1].astype(np.float32))
        y = self.op("Add", [y, self.const(bias)])
        return self.op("Relu", [y]) if relu else y

    def attention(self, h: str, width: int) -> str:
        """One pre-LN single-head self-attention block with a 4× FFN, a residual around
        each, on ``h`` of shape [N, T, width]."""
        ones, zeros = np.ones(width, np.float32), np.zeros(width, np.float32)
        normed = self.op("LayerNormalization", [h, self.const(ones), self.const(zeros)], axis=-1)
        q, k, v = (self.op("MatMul", [normed, self.weight((width, width), width, 0.5)])
                   for _ in range(3))
        scores = self.op("Mul", [self.op("MatMul", [q, self.op("Transpose", [k], perm=[0, 2, 1])]),
                                 self.const(np.array(1 / np.sqrt(width), np.float32))])
        mixed = self.op("MatMul", [self.op("Softmax", [scores], axis=-1), v])
        h = self.op("Add", [h, self.op("MatMul", [mixed, self.weight((width, width), width, 0.5)])])
        ffn = self.dense(self.op("LayerNormalization", [h, self.const(ones), self.const(zeros)],
                                 axis=-1), width, 4 * width)
        return self.op("Add", [h, self.dense(ffn, 4 * width, width, relu=False)])

    def save(self, path: Path, x_shape: list, out: str, out_shape: list,
             dtype: int = TensorProto.FLOAT,
             extra_inputs: tuple[onnx.ValueInfoProto, ...] = ()) -> None:
        """Write the graph with ``out`` as its output ``logits``; the graph itself is left as
        it is, so a model cut at a hidden layer can be saved before the rest is added."""
        graph = helper.make_graph(
            [*self.nodes, helper.make_node("Identity", [out], ["logits"])], path.parent.name,
            [helper.make_tensor_value_info("x", dtype, x_shape), *extra_inputs],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_shape)],
            self.weights)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 9
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, path)


def _mlp(path: Path, seed: int, widths: tuple[int, ...], classes: int) -> tuple[int, ...]:
    """Dense layers ``widths[0] → … → widths[-1] → classes`` with ReLU between."""
    g = _Graph(seed=seed)
    h = "x"
    for n_in, n_out in itertools.pairwise(widths):
        h = g.dense(h, n_in, n_out)
    g.save(path, ["N", widths[0]], g.dense(h, widths[-1], classes, relu=False), ["N", classes])
    return (widths[0],)


def mlp_wide(path: Path) -> tuple[int, ...]:
    """256 → 1024 → 1024 → 16, ReLU: a compute-bound dense model (1.3 M parameters)."""
    return _mlp(path, 11, (256, 1024, 1024), 16)


def mlp_mid(path: Path) -> tuple[int, ...]:
    """96 → 384 → 384 → 10: a mid-sized dense model, between the digits MLP and the wide one."""
    return _mlp(path, 15, (96, 384, 384), 10)


def mlp_huge(path: Path) -> tuple[int, ...]:
    """512 → 2048 → 2048 → 16: memory-bound at batch 1 (5.2 M parameters)."""
    return _mlp(path, 16, (512, 2048, 2048), 16)


def mlp_deep(path: Path) -> tuple[int, ...]:
    """32 → 8 × 64 → 10, ReLU: many small layers, latency-bound (35 k parameters)."""
    return _mlp(path, 12, (32, *[64] * 8), 10)


def mlp_tall(path: Path) -> tuple[int, ...]:
    """128 → 3 × 512 → 10: held out — added after the warm start's scales were chosen."""
    return _mlp(path, 21, (128, 512, 512, 512), 10)


def mlp_slim(path: Path) -> tuple[int, ...]:
    """64 → 256 → 256 → 10: second held-out batch (added before the plan-ending rule was
    checked on them)."""
    return _mlp(path, 31, (64, 256, 256), 10)


def mlp_broad(path: Path) -> tuple[int, ...]:
    """384 → 768 → 768 → 12: second held-out batch."""
    return _mlp(path, 32, (384, 768, 768), 12)


def _mixture(seed: int, rows: int, dim: int, classes: int,
             draw: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` points of a seeded Gaussian mixture (one centre per class, the centres fixed
    by ``seed``, the points by ``draw``) and their classes."""
    centres = np.random.default_rng(seed).normal(size=(classes, dim))
    rng = np.random.default_rng(draw)
    labels = rng.integers(0, classes, size=rows)
    return (centres[labels] + 3.0 * rng.normal(size=(rows, dim))).astype(np.float32), labels


# name → (seed, widths, classes) of the MLPs trained here (:func:`_trained_mlp`).
TRAINED: dict[str, tuple[int, tuple[int, ...], int]] = {
    "gen-trained-slim": (41, (64, 256, 256), 10), "gen-trained-narrow": (42, (48, 192, 192), 8),
    "gen-trained-wide": (43, (160, 640), 12),
    "gen-trained-deep": (51, (96, 256, 256, 256), 16), "gen-trained-broad": (52, (256, 1024), 10),
    "gen-trained-mid": (63, (128, 512, 512), 12)}


def _trained_mlp(path: Path, name: str) -> tuple[int, ...]:
    """The layout of :func:`_mlp`, trained (scikit-learn) on a Gaussian mixture that the
    evaluation rows come from too (:func:`_trained_inputs`): trained weights, unlike every
    other model here, with the wide output margins training leaves."""
    from sklearn.neural_network import MLPClassifier

    seed, widths, classes = TRAINED[name]
    x, y = _mixture(seed, 4000, widths[0], classes, draw=seed + 1)
    net = MLPClassifier(hidden_layer_sizes=widths[1:], max_iter=200, random_state=seed)
    net.fit(x, y)
    g = _Graph(seed=seed)
    h = "x"
    layers = list(zip(net.coefs_, net.intercepts_, strict=True))
    for index, (w, b) in enumerate(layers):
        h = g.dense(h, *w.shape, relu=index < len(layers) - 1, trained=(w, b))
    g.save(path, ["N", widths[0]], h, ["N", classes])
    return (widths[0],)


def _trained_inputs(name: str, rows: int) -> np.ndarray:
    """Evaluation rows of a trained MLP: its training mixture, drawn afresh."""
    seed, widths, classes = TRAINED[name]
    return _mixture(seed, rows, widths[0], classes, draw=0)[0]


def trained_slim(path: Path) -> tuple[int, ...]:
    """gen-mlp-slim's layout (64 → 256 → 256 → 10: the same graph summary), trained —
    third held-out batch, added after the fragility cap was chosen."""
    return _trained_mlp(path, "gen-trained-slim")


def trained_narrow(path: Path) -> tuple[int, ...]:
    """48 → 192 → 192 → 8, trained — third held-out batch."""
    return _trained_mlp(path, "gen-trained-narrow")


def trained_wide(path: Path) -> tuple[int, ...]:
    """160 → 640 → 12, one hidden layer, trained — third held-out batch."""
    return _trained_mlp(path, "gen-trained-wide")


def trained_deep(path: Path) -> tuple[int, ...]:
    """96 → 3 × 256 → 16, trained — fourth held-out batch, added after the fragility rate
    replaced the cap (chosen on the 22 before it)."""
    return _trained_mlp(path, "gen-trained-deep")


def trained_broad(path: Path) -> tuple[int, ...]:
    """256 → 1024 → 10, one hidden layer, trained — fourth held-out batch."""
    return _trained_mlp(path, "gen-trained-broad")


def trained_mid(path: Path) -> tuple[int, ...]:
    """128 → 512 → 512 → 12, trained — fifth held-out batch."""
    return _trained_mlp(path, "gen-trained-mid")


def mlp_square(path: Path) -> tuple[int, ...]:
    """192 → 768 → 768 → 12: fifth held-out batch."""
    return _mlp(path, 61, (192, 768, 768), 12)


def mlp_stack(path: Path) -> tuple[int, ...]:
    """80 → 4 × 320 → 10: fifth held-out batch."""
    return _mlp(path, 62, (80, 320, 320, 320, 320), 10)


def mlp_narrow(path: Path) -> tuple[int, ...]:
    """48 → 3 × 192 → 8: fourth held-out batch."""
    return _mlp(path, 53, (48, 192, 192, 192), 8)


def _conv(path: Path, seed: int, size: int, widths: tuple[int, ...],
          pools: tuple[bool, ...]) -> tuple[int, ...]:
    """3×size×size image: 3×3 conv + ReLU stages (each optionally max-pooled), global
    average pool, linear head of 10."""
    g = _Graph(seed=seed)
    h, channels = "x", 3
    for width, pool in zip(widths, pools, strict=True):
        h = g.op("Relu", [g.op("Conv", [h, g.weight((width, channels, 3, 3), channels * 9),
                                        g.const(np.zeros(width, np.float32))],
                               pads=[1, 1, 1, 1])])
        if pool:
            h = g.op("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
        channels = width
    h = g.op("Flatten", [g.op("GlobalAveragePool", [h])])
    g.save(path, ["N", 3, size, size], g.dense(h, channels, 10, relu=False), ["N", 10])
    return (3, size, size)


def conv_small(path: Path) -> tuple[int, ...]:
    """3×32×32 image: three 3×3 conv + ReLU + max-pool stages (16, 32, 64 channels)."""
    return _conv(path, 13, 32, (16, 32, 64), (True, True, True))


def conv_mid(path: Path) -> tuple[int, ...]:
    """3×64×64 image: four stages (32, 64, 128, 128 channels), about 0.1 GFLOPs."""
    return _conv(path, 17, 64, (32, 64, 128, 128), (True, True, True, False))


def conv_large(path: Path) -> tuple[int, ...]:
    """3×64×64 image: five stages (48 … 192 channels, two at full size), about 1 GFLOPs —
    the size of the built-in convnet's reference, with different weights and layout."""
    return _conv(path, 18, 64, (48, 96, 96, 160, 192), (False, True, False, True, False))


def conv_wide(path: Path) -> tuple[int, ...]:
    """3×48×48 image: three wide stages (64, 128, 256 channels), all pooled — held out."""
    return _conv(path, 22, 48, (64, 128, 256), (True, True, True))


def conv_deep(path: Path) -> tuple[int, ...]:
    """3×40×40 image: four stages (24, 48, 48, 96 channels), three pooled — second
    held-out batch."""
    return _conv(path, 33, 40, (24, 48, 48, 96), (True, False, True, True))


def conv_narrow(path: Path) -> tuple[int, ...]:
    """3×56×56 image: four narrow stages (16, 32, 64, 64 channels), three pooled — fourth
    held-out batch."""
    return _conv(path, 54, 56, (16, 32, 64, 64), (True, True, False, True))


def conv_compact(path: Path) -> tuple[int, ...]:
    """3×48×48 image: three stages (32, 64, 96 channels), all pooled — fifth held-out
    batch."""
    return _conv(path, 64, 48, (32, 64, 96), (True, True, True))


def _attention(path: Path, seed: int, seq: int, width: int, blocks: int) -> tuple[int, ...]:
    """Token ids → embedding → ``blocks`` pre-LN single-head self-attention blocks with a
    4× FFN → 8 tags per token."""
    g = _Graph(seed=seed)
    h = g.op("Gather", [g.weight((VOCAB, width), 2), "x"])
    for _ in range(blocks):
        h = g.attention(h, width)
    g.save(path, ["N", seq], g.dense(h, width, 8, relu=False), ["N", seq, 8],
           dtype=TensorProto.INT64)
    return (seq,)


def attention(path: Path) -> tuple[int, ...]:
    """One block, 64 tokens, width 128: a small relative of the built-in encoder."""
    return _attention(path, 14, 64, 128, 1)


def attention_mid(path: Path) -> tuple[int, ...]:
    """Two blocks, 96 tokens, width 192 — held out."""
    return _attention(path, 23, 96, 192, 2)


def attention_large(path: Path) -> tuple[int, ...]:
    """Two blocks, 128 tokens, width 256: the built-in encoder's size, single-head, pre-LN."""
    return _attention(path, 19, 128, 256, 2)


def attention_small(path: Path) -> tuple[int, ...]:
    """One block, 48 tokens, width 96 — second held-out batch."""
    return _attention(path, 34, 48, 96, 1)


def attention_wide(path: Path) -> tuple[int, ...]:
    """One block, 32 tokens, width 320 — fourth held-out batch."""
    return _attention(path, 55, 32, 320, 1)


def attention_long(path: Path) -> tuple[int, ...]:
    """Two blocks, 64 tokens, width 160 — fifth held-out batch."""
    return _attention(path, 65, 64, 160, 2)


def _conv_attention(path: Path, seed: int, steps: int, features: int, width: int,
                    classes: int) -> tuple[int, ...]:
    """Frames x[N, T, F] → two 1-D convolutions over time (3 wide, ReLU) → one pre-LN
    self-attention block → ``classes`` scores per frame, y[N, T, classes]: a speech- or
    sensor-style sequence tagger with a 3-D output."""
    g = _Graph(seed=seed)
    h, channels = g.op("Transpose", ["x"], perm=[0, 2, 1]), features
    for _ in range(2):
        h = g.op("Relu", [g.op("Conv", [h, g.weight((width, channels, 3), channels * 3),
                                        g.const(np.zeros(width, np.float32))], pads=[1, 1])])
        channels = width
    h = g.attention(g.op("Transpose", [h], perm=[0, 2, 1]), width)
    g.save(path, ["N", steps, features], g.dense(h, width, classes, relu=False),
           ["N", steps, classes])
    return (steps, features)


def conv_attention(path: Path) -> tuple[int, ...]:
    """48 frames of 24 features, convolutions and attention at width 96, 12 tags per frame."""
    return _conv_attention(path, 71, 48, 24, 96, 12)


# Three families (dense, convolutional, attention) at several sizes: a knowledge store
# with relatives of a new model is the case warm start is for. Held-out checks: the three
# after gen-attention-large were added after the transfer plan's scales had been chosen on
# the others; the next four after the plan-ending rule had been chosen on the first 15;
# the three trained ones after the fragility cap had been chosen on the 19 before them; the
# five after that after the fragility rate had replaced the cap, chosen on the 22 before
# them; the last five after the graded quality penalty was chosen on the 27 before them.
GENERATED: dict[str, Callable[[Path], tuple[int, ...]]] = {
    "gen-mlp-wide": mlp_wide, "gen-mlp-deep": mlp_deep, "gen-mlp-mid": mlp_mid,
    "gen-mlp-huge": mlp_huge, "gen-conv-small": conv_small, "gen-conv-mid": conv_mid,
    "gen-conv-large": conv_large, "gen-attention": attention,
    "gen-attention-large": attention_large, "gen-mlp-tall": mlp_tall,
    "gen-conv-wide": conv_wide, "gen-attention-mid": attention_mid,
    "gen-mlp-slim": mlp_slim, "gen-mlp-broad": mlp_broad, "gen-conv-deep": conv_deep,
    "gen-attention-small": attention_small, "gen-trained-slim": trained_slim,
    "gen-trained-narrow": trained_narrow, "gen-trained-wide": trained_wide,
    "gen-trained-deep": trained_deep, "gen-trained-broad": trained_broad,
    "gen-mlp-narrow": mlp_narrow, "gen-conv-narrow": conv_narrow,
    "gen-attention-wide": attention_wide, "gen-trained-mid": trained_mid,
    "gen-mlp-square": mlp_square, "gen-mlp-stack": mlp_stack,
    "gen-conv-compact": conv_compact, "gen-attention-long": attention_long}
# Built the same way for other benches (bench/backends.py), outside warm start's families.
EXTRA: dict[str, Callable[[Path], tuple[int, ...]]] = {"gen-conv-attention": conv_attention}


def build(name: str, folder: Path) -> Workload:
    """Write the model and ``ROWS`` rows of seeded inputs, and load them as a user would."""
    folder = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    # Written under this process's own names and renamed into place: two benches building
    # the same model at once must not read each other's half-written files.
    part = folder / f"model.{os.getpid()}.onnx"
    shape = (GENERATED | EXTRA)[name](part)
    rng = np.random.default_rng(0)
    if name in TRAINED:
        x = _trained_inputs(name, ROWS)
    elif name.startswith("gen-attention"):
        x = rng.integers(0, VOCAB, size=(ROWS, *shape))
    else:
        x = rng.normal(size=(ROWS, *shape)).astype(np.float32)
    np.savez(folder / f"data.{os.getpid()}.npz", x=x)
    os.replace(part, folder / "model.onnx")
    os.replace(folder / f"data.{os.getpid()}.npz", folder / "data.npz")
    return workloads.from_files(folder / "model.onnx", folder / "data.npz", name=name)


SENSOR_CHANNELS, SENSOR_STEPS, SENSOR_DEVICES, SENSOR_CLASSES = 24, 2048, 8, 6
# (width, kernel) of each 1-D convolution, all stride 2
SENSOR_CONVS = ((64, 7), (128, 7), (192, 5), (192, 3), (128, 3), (128, 3))
SENSOR_HIDDEN = 96


def sensor_classifier(folder: Path, *, rows: int = 400) -> tuple[Path, Path]:
    """A ~3 MB classifier of the kind issue 24 was filed on, written as an exporter would:
    signal x[N, 24, 2048] → six 1-D convolutions (stride 2, ReLU) → flatten → dense 4096 →
    96, plus the recording device's id[N] (int64) → OneHot → Cast → dense 8 → 96 → ReLU →
    dense 96 → 6 classes (about 100M multiply-adds per row).

    Each class is a set of frequencies; each device scales and offsets the signal, so the
    one-hot path carries information. The convolutions and the first dense layer are
    seeded (He); the head is fitted by ridge regression on the fp32 features of 1,000
    fresh recordings, so agreement with fp32 reflects real margins. The data holds inputs
    only (quality is top-1 agreement with the fp32 model), ``rows`` of them.
    """
    import onnxruntime as ort

    rng = np.random.default_rng(24)
    g = _Graph(seed=24)
    freqs = rng.uniform(2.0, 40.0, size=(SENSOR_CLASSES, 3))
    phases = rng.uniform(0, 2 * np.pi, size=(SENSOR_CLASSES, SENSOR_CHANNELS))
    gains = rng.uniform(0.5, 2.0, SENSOR_DEVICES)
    offsets = rng.normal(0.0, 1.0, SENSOR_DEVICES)

    def recordings(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        label, device = rng.integers(0, SENSOR_CLASSES, n), rng.integers(0, SENSOR_DEVICES, n)
        t = np.arange(SENSOR_STEPS) / SENSOR_STEPS
        waves = sum(np.sin(2 * np.pi * freqs[label, k, None, None] * t
                           + phases[label][:, :, None]) for k in range(3))
        signal = gains[device, None, None] * waves + offsets[device, None, None]
        signal = signal + 1.0 * rng.normal(size=signal.shape)
        return signal.astype(np.float32), device.astype(np.int64), label

    h, channels = "x", SENSOR_CHANNELS
    for width, kernel in SENSOR_CONVS:
        h = g.op("Relu", [g.op("Conv", [h, g.weight((width, channels, kernel), channels * kernel),
                                        g.const(np.zeros(width, np.float32))],
                               pads=[kernel // 2] * 2, strides=[2])])
        channels = width
    flat = g.op("Flatten", [h])
    g.nodes += [helper.make_node("OneHot", ["device", g.const(np.array(SENSOR_DEVICES, np.int64)),
                                            g.const(np.array([0, 1], np.int64))], ["hot"],
                                 name="one_hot_/OneHot"),
                helper.make_node("Cast", ["hot"], ["hot_f"], name="one_hot_/Cast_1",
                                 to=TensorProto.FLOAT)]
    flat_width = channels * SENSOR_STEPS // 2 ** len(SENSOR_CONVS)
    signal = g.op("MatMul", [flat, g.weight((flat_width, SENSOR_HIDDEN), flat_width)])
    device = g.op("MatMul", ["hot_f", g.weight((SENSOR_DEVICES, SENSOR_HIDDEN), 1)])
    hidden = g.op("Relu", [g.op("Add", [signal, device])])
    x_shape = ["N", SENSOR_CHANNELS, SENSOR_STEPS]
    device_input = (helper.make_tensor_value_info("device", TensorProto.INT64, ["N"]),)
    body = folder / "sensor-features.onnx"
    g.save(body, x_shape, hidden, ["N", SENSOR_HIDDEN], extra_inputs=device_input)
    x, ids, label = recordings(1000)
    features = ort.InferenceSession(str(body), providers=["CPUExecutionProvider"]).run(
        None, {"x": x, "device": ids})[0].astype(np.float64)
    features = np.hstack([features, np.ones((len(features), 1))])
    targets = np.eye(SENSOR_CLASSES)[label] * 4
    head = np.linalg.solve(features.T @ features + 10.0 * np.eye(features.shape[1]),
                           features.T @ targets)
    logits = g.op("Add", [g.op("MatMul", [hidden, g.const(head[:-1].astype(np.float32))]),
                          g.const(head[-1].astype(np.float32))])
    body.unlink()
    model, data = folder / "model.onnx", folder / "data.npz"
    g.save(model, x_shape, logits, ["N", SENSOR_CLASSES], extra_inputs=device_input)
    x, ids, _ = recordings(rows)
    np.savez(data, x=x, device=ids)
    return model, data

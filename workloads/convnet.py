"""Built-in workload "convnet": a VGG-style image classifier with locally learned weights.

Why it exists: the tuner needs one compute-bound convolutional model of realistic size,
whose accuracy is meaningful and whose int8 quantization error is real, and that can be
built offline on a small CPU box (no torch, no downloads). Random weights would make every
quantization or fusion look lossless, so the weights are trained here, from scikit-learn's
``load_digits`` rendered as tinted 64x64 colour images on textured backgrounds.

Training without autograd: each conv layer is learned greedily from the previous layers'
outputs with spherical k-means on whitened 3x3 patches (Coates & Ng), and its per-channel
standardisation is folded into the conv weight and bias; a softmax regression on 2x2-average-
pooled last features becomes the ``Gemm`` head. Everything runs on one thread with fixed
seeds, so a build writes the same bytes every time on the same machine.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from numpy.lib.stride_tricks import sliding_window_view
from onnx import TensorProto, helper, numpy_helper

from workloads.base import BuildOutput, Metric, Recipe, Variant

SEED = 1797
SIZE = 64  # image side in pixels
N_EVAL, N_CALIB = 450, 100
TRAIN_COPIES = 2  # independently augmented renders of each training digit
N_FIT_IMAGES = 200  # images whose activations feed the k-means of each layer
N_PATCHES = 10_000  # patches per layer
WHITEN_DIMS = 256  # principal components kept when whitening a layer's patches
WHITEN_EPS = 0.1  # regulariser, relative to the mean kept variance
THRESHOLD = -0.5  # each layer is ReLU(z - THRESHOLD) of its standardised response z
HEAD_C = 0.03  # inverse L2 strength of the softmax head
HEAD_ITERATIONS = 500
OPSET, IR_VERSION = 17, 9


@dataclass(frozen=True)
class Arch:
    """A width/depth variant: output channels of each 3x3 conv and whether a 2x2 max-pool follows.

    Three pools take 64x64 to the 8x8 map that every head expects.
    """

    name: str
    widths: tuple[int, ...]
    pools: tuple[bool, ...]
    description: str


ARCHS = (
    Arch("convnet-s", (24, 48, 96, 128, 192), (True, True, True, False, False),
         "5 conv layers, narrow, pools early: the cheap variant"),
    Arch("convnet-m", (48, 96, 96, 160, 192, 256, 256),
         (False, True, False, True, False, True, False),
         "7 conv layers, two per resolution: the reference"),
)
REFERENCE = "convnet-m"


@dataclass(frozen=True)
class Conv:
    """One learned 3x3 conv (padding 1) with a ReLU and an optional 2x2 max-pool."""

    weight: np.ndarray  # (out, in, 3, 3) float32
    bias: np.ndarray  # (out,) float32
    pool: bool


def _bilinear(coords: np.ndarray, n: int) -> np.ndarray:
    """Interpolation weights (..., P, n) reading an n-sample axis at ``coords``, zero outside."""
    low = np.floor(coords)[..., None]
    frac = coords[..., None] - low
    index = np.arange(n)
    return (index == low) * (1 - frac) + (index == low + 1) * frac


def _render(glyphs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw 8x8 digits in [0, 1] as (n, 3, 64, 64) images: shifted, scaled, tinted, noisy.

    Backgrounds are dark colour ramps with low-frequency colour blotches, so the first
    layers must learn shape rather than brightness.
    """
    n = len(glyphs)
    pixels = np.arange(SIZE) + 0.5
    extent = rng.uniform(44, 56, n)
    aspect = rng.uniform(0.9, 1.1, n)
    centre = SIZE / 2 + rng.uniform(-4, 4, (n, 2))
    rows = _bilinear((pixels - centre[:, :1]) * (8 / (extent * aspect))[:, None] + 3.5, 8)
    cols = _bilinear((pixels - centre[:, 1:]) * (8 * aspect / extent)[:, None] + 3.5, 8)
    ink = (rows @ glyphs @ cols.transpose(0, 2, 1))[:, None]
    near, far = rng.uniform(0, 0.4, (2, n, 3, 1, 1))
    angle = rng.uniform(0, 2 * np.pi, (n, 1, 1, 1))
    unit = pixels / SIZE - 0.5
    ramp = 0.5 + np.cos(angle) * unit[:, None] + np.sin(angle) * unit
    blotch_axis = _bilinear(pixels / SIZE * 3, 4)
    blotches = blotch_axis @ rng.normal(0, 0.06, (n, 3, 4, 4)) @ blotch_axis.T
    background = near + (far - near) * ramp + blotches
    tint = rng.uniform(0.55, 1, (n, 3, 1, 1))
    image = background * (1 - ink) + tint * ink + rng.normal(0, 0.03, (n, 3, SIZE, SIZE))
    return np.clip(image, 0, 1).astype(np.float32)


def _conv_graph(convs: list[Conv]) -> tuple[list[onnx.NodeProto], list[TensorProto], str]:
    """Nodes and initializers of the conv stack, and the name of its last activation."""
    nodes, inits, x = [], [], "image"
    for i, conv in enumerate(convs):
        inits += [numpy_helper.from_array(conv.weight, f"conv{i}.weight"),
                  numpy_helper.from_array(conv.bias, f"conv{i}.bias")]
        nodes += [helper.make_node("Conv", [x, f"conv{i}.weight", f"conv{i}.bias"], [f"conv{i}"],
                                   kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"])]
        x = f"relu{i}"
        if conv.pool:
            nodes.append(helper.make_node("MaxPool", [x], [f"pool{i}"],
                                          kernel_shape=[2, 2], strides=[2, 2]))
            x = f"pool{i}"
    return nodes, inits, x


def _model(convs: list[Conv], head: tuple[np.ndarray, np.ndarray] | None = None,
           source: tuple[int, int, int] = (3, SIZE, SIZE)) -> onnx.ModelProto:
    """The classifier given a Gemm ``head`` (weight (10, F), bias); else the stack's last map.

    ``source`` is the (C, H, W) input shape: training runs single layers on earlier maps.
    """
    nodes, inits, x = _conv_graph(convs)
    output = helper.make_tensor_value_info(x, TensorProto.FLOAT, None)
    if head is not None:
        inits += [numpy_helper.from_array(head[0], "head.weight"),
                  numpy_helper.from_array(head[1], "head.bias")]
        nodes += [helper.make_node("AveragePool", [x], ["avgpool"],
                                   kernel_shape=[2, 2], strides=[2, 2]),
                  helper.make_node("Flatten", ["avgpool"], ["features"]),
                  helper.make_node("Gemm", ["features", "head.weight", "head.bias"], ["logits"],
                                   transB=1)]
        output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])
    graph = helper.make_graph(
        nodes, "convnet",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", *source])],
        [output], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="podium")
    model.ir_version = IR_VERSION
    return model


def _run(model: onnx.ModelProto, images: np.ndarray, batch: int = 16) -> np.ndarray:
    """Run ``model`` on one thread (fast enough here, and the same bytes on every run)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"image": images[i:i + batch]})[0]
                           for i in range(0, len(images), batch)])


def _patches(maps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random 3x3 patches of (N, C, H, W) maps, zero-padded like the conv, in weight order."""
    windows = sliding_window_view(np.pad(maps, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3),
                                  axis=(2, 3))
    n, _, h, w = maps.shape
    picks = (rng.integers(0, n, N_PATCHES), rng.integers(0, h, N_PATCHES),
             rng.integers(0, w, N_PATCHES))
    return windows[picks[0], :, picks[1], picks[2]].reshape(N_PATCHES, -1)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-8)


def _spherical_kmeans(x: np.ndarray, k: int, rng: np.random.Generator,
                      iterations: int = 10) -> np.ndarray:
    """k unit-norm centroids maximising the dot product with their points; empty ones reseed."""
    centroids = _unit_rows(x[rng.choice(len(x), k, replace=False)])
    for _ in range(iterations):
        assign = np.argmax(x @ centroids.T, axis=1)
        members = np.zeros((len(x), k), x.dtype)
        members[np.arange(len(x)), assign] = 1
        sums = members.T @ x
        empty = members.sum(0) == 0
        sums[empty] = x[rng.choice(len(x), int(empty.sum()), replace=False)]
        centroids = _unit_rows(sums)
    return centroids


def _learn_conv(patches: np.ndarray, width: int, rng: np.random.Generator,
                pool: bool) -> Conv:
    """One conv layer from its input patches: whiten, cluster, then standardise each response.

    The whitening and the standardisation are linear, so they fold into weight and bias and
    the exported layer is a plain Conv whose outputs have zero mean and unit variance.
    """
    from sklearn.utils.extmath import randomized_svd  # sklearn: only where a build trains

    mean = patches.mean(0)
    centred = patches - mean
    cov = (centred.T @ centred / len(centred)).astype(np.float64)
    dims = min(len(cov), WHITEN_DIMS)
    _, var, basis = randomized_svd(cov, dims, random_state=int(rng.integers(2**31)))
    whiten = (basis / np.sqrt(var + WHITEN_EPS * var.mean())[:, None]).astype(np.float32)
    weight = _spherical_kmeans(centred @ whiten.T, width, rng) @ whiten
    response = centred @ weight.T
    scale = response.std(0) + 1e-6
    weight /= scale[:, None]
    bias = -(weight @ mean) - response.mean(0) / scale - THRESHOLD
    in_channels = patches.shape[1] // 9
    return Conv(weight.reshape(width, in_channels, 3, 3).astype(np.float32),
                bias.astype(np.float32), pool)


def _train_convs(arch: Arch, images: np.ndarray, rng: np.random.Generator) -> list[Conv]:
    """Greedy layer-wise training: each layer clusters the patches the layers below produce."""
    convs: list[Conv] = []
    maps = images
    for width, pool in zip(arch.widths, arch.pools, strict=True):
        if convs:
            maps = _run(_model(convs[-1:], source=maps.shape[1:]), maps)
        convs.append(_learn_conv(_patches(maps, rng), width, rng, pool))
    return convs


def _pooled_features(convs: list[Conv], images: np.ndarray) -> np.ndarray:
    """What the head sees: the last 8x8 map, 2x2-average-pooled and flattened."""
    maps = _run(_model(convs), images)
    n, c, h, w = maps.shape
    return maps.reshape(n, c, h // 2, 2, w // 2, 2).mean((3, 5)).reshape(n, -1)


def _train_head(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression on standardised features, the standardisation folded into Gemm."""
    from sklearn.linear_model import LogisticRegression

    mean, std = features.mean(0), features.std(0) + 1e-6
    softmax = LogisticRegression(C=HEAD_C, max_iter=HEAD_ITERATIONS)
    softmax.fit((features - mean) / std, labels)
    weight = softmax.coef_ / std
    bias = softmax.intercept_ - weight @ mean
    return weight.astype(np.float32), bias.astype(np.float32)


def _parameters(model: onnx.ModelProto) -> int:
    return sum(int(np.prod(init.dims)) for init in model.graph.initializer)


def _rng(*keys: str | int) -> np.random.Generator:
    """An independent stream per purpose, so changing one step leaves the others' draws alone."""
    return np.random.default_rng([SEED, *(zlib.crc32(str(k).encode()) for k in keys)])


def _split(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Disjoint eval / calib / train digits (8x8 in [0, 1]) with their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = rng.permutation(len(digits.target))
    parts = {"eval": order[:N_EVAL], "calib": order[N_EVAL:N_EVAL + N_CALIB],
             "train": order[N_EVAL + N_CALIB:]}
    return {k: (digits.images[idx] / 16.0, digits.target[idx].astype(np.int64))
            for k, idx in parts.items()}


def build(out_dir: Path) -> BuildOutput:
    """Render the data, train every variant and write ``<variant>.onnx`` into ``out_dir``."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        data = _split(_rng("split"))
        train_glyphs, train_labels = data["train"]
        train = np.concatenate([_render(train_glyphs, _rng("train", copy))
                                for copy in range(TRAIN_COPIES)])
        labels = np.tile(train_labels, TRAIN_COPIES)
        variants = []
        for arch in ARCHS:
            convs = _train_convs(arch, train[:N_FIT_IMAGES], _rng(arch.name))
            model = _model(convs, _train_head(_pooled_features(convs, train), labels))
            onnx.checker.check_model(model, full_check=True)
            onnx.save(model, out_dir / f"{arch.name}.onnx")
            variants.append(Variant(arch.name, f"{arch.name}.onnx", arch.description,
                                    _parameters(model)))
        return BuildOutput(
            variants=variants, reference=REFERENCE,
            eval_inputs={"image": _render(data["eval"][0], _rng("eval"))},
            calib_inputs={"image": _render(data["calib"][0], _rng("calib"))},
            eval_labels=data["eval"][1])


RECIPE = Recipe(
    name="convnet",
    description="VGG-style CNN classifying tinted 64x64 renders of sklearn digits; "
                "weights learned locally (layer-wise k-means convs, softmax head)",
    metric=Metric.ACCURACY,
    version=1,
    build=build,
)

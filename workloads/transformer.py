"""Transformer-encoder workload: a BERT-shaped token tagger built and given weights locally.

Why this shape: attention encoders are what most ONNX serving stacks are tuned for, and their
graph (Gather embeddings, MatMul+Add projections, Reshape/Transpose heads, Softmax, residual
LayerNormalization, Erf-form GELU) is the one ONNX Runtime's fusions and TVM's importer expect.

Why the weights mean something: a random encoder with a random head gives near-tied logits, so
top-1 agreement would measure noise. Instead the tokens come from a tiny synthetic language
whose tag is ``lexical class of the token + 16 * (the previous token is a determiner)``. The
weights are BERT-style random (normal 0.02) except for what the task needs, laid out in disjoint
slices of the hidden vector: token embeddings that cluster by class, sinusoidal positional
embeddings, and one head of the first layer that attends to the previous position (its query
and key are the position, the key rotated by one step) and copies that token into its own
slice. The classifier is then fitted by least squares on the encoder's fp32 features, so its
argmax is decisive.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from workloads.base import BuildOutput, Metric, Recipe, Variant

OPSET = 17
IR_VERSION = 9
SEED = 1729
VOCAB = 512
SEQ = 128
HIDDEN = 256
HEADS = 4
HEAD_DIM = HIDDEN // HEADS
FFN = 4 * HIDDEN
LEXICAL = 16  # lexical classes of tokens; classes below DETERMINERS are determiners
DETERMINERS = 4
CLASSES = 2 * LEXICAL  # tag = lexical class + LEXICAL * (previous token is a determiner)
BOS = 0  # every sequence starts with it; it is never a determiner
TOKEN = slice(0, 128)  # hidden slices: token embedding, previous token, position
PREV = slice(128, 192)
POS = slice(192, 256)
POS_SCALE = 1.5  # query/key gain of the previous-token head: >= 96% of its attention on it
N_EVAL, N_CALIB, N_FIT = 64, 32, 32
LINEARS = {"q": (HIDDEN, HIDDEN), "k": (HIDDEN, HIDDEN), "v": (HIDDEN, HIDDEN),
           "o": (HIDDEN, HIDDEN), "ff1": (HIDDEN, FFN), "ff2": (FFN, HIDDEN)}  # per layer
LAYERS = {"encoder-2l": 2, "encoder-4l": 4}
REFERENCE = "encoder-2l"


def build(out_dir: Path) -> BuildOutput:
    """Write every variant into ``out_dir`` and return the eval/calibration token ids."""
    rng = np.random.default_rng(SEED)
    lexical = _lexical_classes(rng)
    ids = _sentences(rng, N_EVAL + N_CALIB + N_FIT)
    eval_ids, calib_ids, fit_ids = np.split(ids, [N_EVAL, N_EVAL + N_CALIB])
    variants = []
    for name, layers in LAYERS.items():
        weights = _encoder_weights(np.random.default_rng([SEED, layers]), lexical, layers)
        weights |= _fit_classifier(weights, layers, fit_ids, _tags(fit_ids, lexical))
        model = _model(weights, layers, with_head=True)
        onnx.save_model(model, out_dir / f"{name}.onnx")
        variants.append(Variant(
            name=name, filename=f"{name}.onnx",
            description=f"{layers}-layer post-LN encoder, hidden {HIDDEN}, {HEADS}x{HEAD_DIM} "
                        f"heads, FFN {FFN}, seq {SEQ}, {CLASSES} tags",
            parameters=sum(int(w.size) for w in weights.values())))
    return BuildOutput(variants=variants, reference=REFERENCE,
                       eval_inputs={"input_ids": eval_ids}, calib_inputs={"input_ids": calib_ids})


def _lexical_classes(rng: np.random.Generator) -> np.ndarray:
    """Class of every token id; BOS gets a non-determiner class so position 0 reads as such."""
    classes = rng.integers(0, LEXICAL, VOCAB)
    classes[BOS] = LEXICAL - 1
    return classes


def _sentences(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` BOS-led sequences of uniform non-BOS tokens, int64 [n, SEQ]."""
    ids = rng.integers(1, VOCAB, (n, SEQ), dtype=np.int64)
    ids[:, 0] = BOS
    return ids


def _tags(ids: np.ndarray, lexical: np.ndarray) -> np.ndarray:
    """The ground-truth rule: own lexical class, shifted when the previous token determines."""
    after_determiner = np.zeros(ids.shape, dtype=bool)
    after_determiner[:, 1:] = lexical[ids[:, :-1]] < DETERMINERS
    return lexical[ids] + LEXICAL * after_determiner


def _encoder_weights(rng: np.random.Generator, lexical: np.ndarray,
                     layers: int) -> dict[str, np.ndarray]:
    """BERT-style init (normal 0.02, LayerNorm 1/0) plus the task structure of the docstring."""
    def normal(*shape: int, std: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * std).astype(np.float32)

    token_dims = TOKEN.stop - TOKEN.start
    tokens = np.zeros((VOCAB, HIDDEN), np.float32)
    centroids = rng.standard_normal((LEXICAL, token_dims))
    tokens[:, TOKEN] = centroids[lexical] + 0.5 * rng.standard_normal((VOCAB, token_dims))
    freqs = rng.uniform(0.2, np.pi - 0.2, HEAD_DIM // 2)
    phases = rng.uniform(0, 2 * np.pi, HEAD_DIM // 2)
    angles = np.arange(SEQ)[:, None] * freqs + phases
    positions = np.zeros((SEQ, HIDDEN), np.float32)
    positions[:, POS] = np.stack([np.sin(angles), np.cos(angles)], -1).reshape(SEQ, HEAD_DIM)
    w = {"tok_emb": tokens, "pos_emb": positions,
         "emb_ln.g": np.ones(HIDDEN, np.float32), "emb_ln.b": np.zeros(HIDDEN, np.float32)}
    for i in range(layers):
        p = f"l{i}."
        for n, (rows, cols) in LINEARS.items():
            w[p + n + ".w"], w[p + n + ".b"] = normal(rows, cols), np.zeros(cols, np.float32)
        for n in ("ln1", "ln2"):
            w[p + n + ".g"] = np.ones(HIDDEN, np.float32)
            w[p + n + ".b"] = np.zeros(HIDDEN, np.float32)
    _previous_token_head(w, freqs, rng)
    return w


def _previous_token_head(w: dict[str, np.ndarray], freqs: np.ndarray,
                         rng: np.random.Generator) -> None:
    """Make head 0 of layer 0 copy the previous token into the PREV slice.

    Rotating every (sin, cos) pair of a position by its frequency gives the next position, so
    query = position and key = rotated position score highest one step back.
    """
    head = slice(0, HEAD_DIM)
    cos, sin = np.cos(freqs), np.sin(freqs)
    rotate = np.zeros((HEAD_DIM, HEAD_DIM))
    rotate[0::2, 0::2], rotate[0::2, 1::2] = np.diag(cos), np.diag(-sin)
    rotate[1::2, 0::2], rotate[1::2, 1::2] = np.diag(sin), np.diag(cos)
    for name, block in {"q": np.eye(HEAD_DIM), "k": rotate}.items():
        w[f"l0.{name}.w"][:, head] = 0
        w[f"l0.{name}.w"][POS, head] = POS_SCALE * block
    token_dims = TOKEN.stop - TOKEN.start
    w["l0.v.w"][:, head] = 0
    w["l0.v.w"][TOKEN, head] = rng.standard_normal((token_dims, HEAD_DIM)) / np.sqrt(token_dims)
    w["l0.o.w"][head] = 0
    w["l0.o.w"][head, PREV] = np.eye(HEAD_DIM)


def _fit_classifier(weights: dict[str, np.ndarray], layers: int, ids: np.ndarray,
                    tags: np.ndarray) -> dict[str, np.ndarray]:
    """Least-squares head on fp32 features: class and determiner scores, summed per tag.

    The tag is a pair (class, after-determiner), so two linear scores that add give the same
    argmax as the pair; weights are rounded to 2^-12 so the bytes do not hang on BLAS rounding.
    """
    session = ort.InferenceSession(_model(weights, layers, with_head=False).SerializeToString(),
                                   _single_thread(), providers=["CPUExecutionProvider"])
    features = session.run(None, {"input_ids": ids})[0].reshape(-1, HIDDEN).astype(np.float64)
    design = np.hstack([features, np.ones((len(features), 1))])
    tags = tags.reshape(-1)
    lexical = _ridge(design, np.eye(LEXICAL)[tags % LEXICAL])
    determiner = _ridge(design, np.eye(2)[tags // LEXICAL])
    solution = np.tile(lexical, 2) + np.repeat(determiner, LEXICAL, axis=1)
    solution = np.round(solution * 4096) / 4096
    return {"cls.w": solution[:-1].astype(np.float32), "cls.b": solution[-1].astype(np.float32)}


def _ridge(design: np.ndarray, targets: np.ndarray, alpha: float = 1e-2) -> np.ndarray:
    """Ridge regression, solved in float64 for a stable, reproducible solution."""
    gram = design.T @ design + alpha * np.eye(design.shape[1])
    return np.linalg.solve(gram, design.T @ targets)


def _single_thread() -> ort.SessionOptions:
    """One thread, so the fitted features (and the model bytes) do not vary with the cores."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return options


class _Graph:
    """Accumulates nodes and initializers; every helper returns its output's name."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits = [numpy_helper.from_array(a, n) for n, a in weights.items()]

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: object) -> str:
        out = out or f"{op_type.lower()}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def linear(self, x: str, prefix: str) -> str:
        return self.op("Add", self.op("MatMul", x, prefix + ".w"), prefix + ".b")

    def layer_norm(self, x: str, prefix: str) -> str:
        return self.op("LayerNormalization", x, prefix + ".g", prefix + ".b", axis=-1,
                       epsilon=1e-12)


def _model(weights: dict[str, np.ndarray], layers: int, with_head: bool) -> onnx.ModelProto:
    """The ONNX graph; without the head it outputs the last hidden state (for the fit)."""
    g = _Graph(weights)
    g.const("heads_shape", np.array([0, 0, HEADS, HEAD_DIM], np.int64))
    g.const("hidden_shape", np.array([0, 0, HIDDEN], np.int64))
    g.const("inv_sqrt_d", np.array(1 / np.sqrt(HEAD_DIM), np.float32))
    g.const("sqrt2", np.array(np.sqrt(2), np.float32))
    g.const("one", np.array(1, np.float32))
    g.const("half", np.array(0.5, np.float32))
    x = g.op("Add", g.op("Gather", "tok_emb", "input_ids"), "pos_emb")
    x = g.layer_norm(x, "emb_ln")
    for i in range(layers):
        x = _encoder_layer(g, x, f"l{i}.")
    if with_head:
        g.linear(x, "cls")
    out_name, width = ("logits", CLASSES) if with_head else ("hidden", HIDDEN)
    g.nodes[-1].output[0] = out_name  # the last node's output is the graph's output
    graph = helper.make_graph(
        g.nodes, "encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", SEQ])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", SEQ, width])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="podium", ir_version=IR_VERSION)
    onnx.checker.check_model(model, full_check=True)
    return model


def _encoder_layer(g: _Graph, x: str, p: str) -> str:
    """Post-LN BERT layer: self-attention, Add+LayerNorm, Erf-GELU FFN, Add+LayerNorm."""
    def heads(name: str, perm: list[int]) -> str:
        return g.op("Transpose", g.op("Reshape", g.linear(x, p + name), "heads_shape"), perm=perm)

    scores = g.op("Mul", g.op("MatMul", heads("q", [0, 2, 1, 3]), heads("k", [0, 2, 3, 1])),
                  "inv_sqrt_d")
    context = g.op("MatMul", g.op("Softmax", scores, axis=-1), heads("v", [0, 2, 1, 3]))
    context = g.op("Reshape", g.op("Transpose", context, perm=[0, 2, 1, 3]), "hidden_shape")
    x = g.layer_norm(g.op("Add", x, g.linear(context, p + "o")), p + "ln1")
    h = g.linear(x, p + "ff1")
    gelu = g.op("Mul", g.op("Mul", h, g.op("Add", g.op("Erf", g.op("Div", h, "sqrt2")), "one")),
                "half")
    return g.layer_norm(g.op("Add", x, g.linear(gelu, p + "ff2")), p + "ln2")


RECIPE = Recipe(
    name="encoder",
    description=f"BERT-shaped {HIDDEN}-hidden attention encoder tagging a synthetic language "
                f"(seq {SEQ}, {CLASSES} tags); quality is top-1 agreement with fp32",
    metric=Metric.AGREEMENT,
    version=1,
    build=build,
)

"""``digits``: scikit-learn's 8×8 digits, three classifiers from tiny to wide.

The fast workload for tests. Variants trade accuracy for latency: a linear model, a
64-unit MLP and a 2×256 MLP (the reference). MLPs go through skl2onnx; the outputs are
cut to the class probabilities (no ZipMap/ArrayFeatureExtractor, so TVM can import
them). The linear model is written as Gemm + Softmax because skl2onnx emits the
``ai.onnx.ml`` LinearClassifier op, which neither ORT's quantizer nor TVM handles.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from workloads.base import BuildOutput, Metric, Recipe, Variant

SEED = 0
N_CALIB = 100
N_EVAL = 500
OPSET = 17
MAX_EPOCHS = 60  # enough for ~95% eval accuracy; more only slows the first build


def build(out_dir: Path) -> BuildOutput:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    images, labels = load_digits(return_X_y=True)
    order = np.random.default_rng(SEED).permutation(len(labels))
    x = (images[order] / 16.0).astype(np.float32)
    y = labels[order].astype(np.int64)
    x_eval, y_eval = x[:N_EVAL], y[:N_EVAL]
    x_calib = x[N_EVAL:N_EVAL + N_CALIB]
    x_train, y_train = x[N_EVAL + N_CALIB:], y[N_EVAL + N_CALIB:]

    linear = LogisticRegression(max_iter=500, random_state=SEED).fit(x_train, y_train)
    variants = [_save(out_dir, "linear", _linear_model(linear), "logistic regression, 64→10")]
    for name, hidden in (("mlp-64", (64,)), ("mlp-2x256", (256, 256))):
        mlp = MLPClassifier(hidden, max_iter=MAX_EPOCHS, random_state=SEED)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlp.fit(x_train, y_train)
        variants.append(_save(out_dir, name, _mlp_model(mlp, x_train[:1]),
                              f"MLP {'×'.join(map(str, hidden))} (ReLU), skl2onnx"))
    return BuildOutput(variants=variants, reference="mlp-2x256", eval_inputs={"X": x_eval},
                       calib_inputs={"X": x_calib}, eval_labels=y_eval)


def _linear_model(clf) -> onnx.ModelProto:
    weights = numpy_helper.from_array(clf.coef_.T.astype(np.float32), "W")
    bias = numpy_helper.from_array(clf.intercept_.astype(np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["X", "W", "B"], ["scores"]),
         helper.make_node("Softmax", ["scores"], ["probabilities"], axis=-1)],
        "digits_linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        [weights, bias])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                             ir_version=9)


def _mlp_model(clf, sample: np.ndarray) -> onnx.ModelProto:
    from skl2onnx import to_onnx

    full = to_onnx(clf, sample, options={id(clf): {"zipmap": False}}, target_opset=OPSET)
    model = onnx.utils.Extractor(full).extract_model(["X"], ["probabilities"])
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("", OPSET))
    model.ir_version = 9
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    return model


def _save(out_dir: Path, name: str, model: onnx.ModelProto, description: str) -> Variant:
    onnx.checker.check_model(model)
    filename = f"{name}.onnx"
    onnx.save(model, out_dir / filename)
    parameters = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    return Variant(name, filename, description, parameters)


RECIPE = Recipe(name="digits", description="scikit-learn digits (8×8), linear and MLP classifiers",
                metric=Metric.ACCURACY, version=1, build=build)

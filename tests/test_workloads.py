from __future__ import annotations

import numpy as np
import pytest

import workloads
from tests import onnx_models
from tuner.errors import WorkloadError
from workloads.base import Metric
from workloads.quality import fragile_share


def test_registry_lists_the_builtins():
    assert {"digits", "convnet", "encoder"} <= set(workloads.names())
    with pytest.raises(WorkloadError, match="unknown workload 'nope'"):
        workloads.get("nope")


def test_digits_has_a_real_tradeoff(digits):
    assert len(digits.variants) >= 3
    assert digits.metric is Metric.ACCURACY
    assert digits.reference_quality > 0.9
    assert digits.eval_labels is not None and len(digits.eval_labels) == digits.n_eval
    sizes = [v.parameters for v in digits.variants.values()]
    assert sizes == sorted(sizes) and sizes[-1] > 10 * sizes[0]


def test_builtin_is_cached_and_verified(digits):
    again = workloads.get("digits")
    assert again.root == digits.root and again.sha256 == digits.sha256


def test_calibration_and_evaluation_are_disjoint(digits):
    evaluation, calibration = digits.eval_inputs["X"], digits.calib_inputs["X"]
    rows = {row.tobytes() for row in evaluation}
    assert not any(row.tobytes() in rows for row in calibration)


def test_user_workload_from_files(tmp_path):
    model = onnx_models.classifier(tmp_path / "m.onnx")
    data = onnx_models.data(tmp_path / "d.npz")
    wl = workloads.from_files(model, data)
    assert wl.metric is Metric.ACCURACY and wl.source == "files"
    assert wl.n_eval + len(wl.calib_inputs["x"]) == 40
    unlabeled = workloads.from_files(model, onnx_models.data(tmp_path / "u.npz", classes=None))
    assert unlabeled.metric is Metric.AGREEMENT and unlabeled.reference_quality == 1.0
    assert wl.sha256 != unlabeled.sha256


def _count(podium_home) -> int:
    return len(list((podium_home / "workloads").glob("*")))


@pytest.mark.parametrize(("case", "fragment"), [
    ("corrupt", "not a readable ONNX file"),
    ("truncated", "not a readable ONNX"),
    ("missing_input", "missing ['x']"),
    ("extra_key", "unknown ['z']"),
    ("dtype", "dtype float64"),
    ("shape", "shape [40, 5]"),
    ("batch", "different batch sizes"),
    ("pickle", "pickled objects"),
    ("not_npz", "not a readable npz"),
    ("nan", "NaN/Inf"),
    ("float_labels", "must be integers"),
])
def test_bad_user_input_is_refused_and_nothing_is_cached(tmp_path, podium_home, case, fragment):
    model = onnx_models.classifier(tmp_path / "m.onnx")
    data = onnx_models.data(tmp_path / "d.npz")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8)).astype(np.float32)
    if case == "corrupt":
        model.write_bytes(b"this is not protobuf at all" * 10)
    elif case == "truncated":
        model.write_bytes(model.read_bytes()[:200])
    elif case == "missing_input":
        np.savez(data, y=x)
    elif case == "extra_key":
        np.savez(data, x=x, z=x)
    elif case == "dtype":
        np.savez(data, x=x.astype(np.float64))
    elif case == "shape":
        np.savez(data, x=x[:, :5])
    elif case == "batch":
        np.savez(data, x=x, labels=np.zeros(7, np.int64))
    elif case == "pickle":
        np.savez(data, x=np.array([{"a": 1}] * 40, dtype=object))
    elif case == "not_npz":
        data.write_bytes(b"garbage")
    elif case == "nan":
        model = onnx_models.nan_model(tmp_path / "nan.onnx")
        np.savez(data, x=rng.normal(size=(10, 4)).astype(np.float32))
    elif case == "float_labels":
        np.savez(data, x=x, labels=np.zeros(40, np.float32))
    before = _count(podium_home)
    with pytest.raises(WorkloadError) as error:
        workloads.from_files(model, data)
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)
    assert _count(podium_home) == before


def test_fragile_share_counts_the_rows_a_small_change_can_flip(digits):
    """Rows whose top two scores are within a fifth of the row's spread are fragile."""
    wide, close = [0.0, 0.0, 0.0, 10.0], [0.0, 0.0, 9.9, 10.0]  # row std about 4.3
    scores = np.array([wide, wide, wide, close])
    assert fragile_share(Metric.AGREEMENT, scores) == 0.25
    assert fragile_share(Metric.ACCURACY, scores[:, None, :]) == 0.25  # rows of any rank
    assert fragile_share(Metric.RELATIVE_ERROR, scores) is None
    assert fragile_share(Metric.AGREEMENT, scores[:, :1]) is None  # one score per row
    # A trained classifier's fp32 outputs keep wide margins on its own evaluation data.
    assert fragile_share(digits.metric, digits.reference_outputs) < 0.01

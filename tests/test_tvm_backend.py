"""TvmBackend end to end on tiny ONNX models built here, checked against ONNX Runtime."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tuner.backends.base import Artifact
from tuner.backends.tvm import IO_FILE, LIBRARY_FILE, TvmBackend
from tuner.errors import TrialFailed
from tuner.trial.config import Configuration

# A portable target: generic x86-64/AArch64 code runs on any CI machine.
HARDWARE = {"tvm_target": {"kind": "llvm"}, "cores": 1}


def _save(path: Path, nodes, inputs, outputs, initializers) -> Path:
    graph = helper.make_graph(nodes, "test", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.save(model, path)
    return path


def _weights(name: str, shape: tuple[int, ...], scale: float = 0.2) -> onnx.TensorProto:
    rng = np.random.default_rng(sum(map(ord, name)))
    return numpy_helper.from_array((rng.normal(size=shape) * scale).astype(np.float32), name)


def _conv_model(path: Path) -> Path:
    """x[N,3,16,16] → Conv → Relu → Flatten → Gemm → y[N,10]."""
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"])]
    return _save(path, nodes,
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
                 [_weights("w", (8, 3, 3, 3)), _weights("b", (8,)),
                  _weights("fw", (8 * 16 * 16, 10), 0.02), _weights("fb", (10,))])


def _mlp_model(path: Path) -> Path:
    """x[N,8] → MatMul → Relu → MatMul → logits, plus Softmax: two outputs."""
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)]
    return _save(path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                 [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3]),
                  helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])],
                 [_weights("w1", (8, 16), 1.0), _weights("w2", (16, 3), 1.0)])


def _computed_shape_model(path: Path) -> Path:
    """A Reshape whose target is arithmetic on Shape(x): TVM imports it only once folded."""
    two = numpy_helper.from_array(np.array([1, 1, 2, 2], np.int64), "two")
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Div", ["s", "two"], ["half"]),
             helper.make_node("Mul", ["half", "two"], ["target"]),
             helper.make_node("Reshape", ["x", "target"], ["y"])]
    return _save(path, nodes,
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 4, 4])], [two])


def _build(model: Path, out_dir: Path, **config) -> tuple[Artifact, Configuration]:
    out_dir.mkdir()
    cfg = Configuration(backend="tvm", **config)
    artifact = TvmBackend().build(model, cfg, out_dir, calibration=None, hardware=HARDWARE)
    return artifact, cfg


def _check_against_ort(model: Path, artifact: Artifact, cfg: Configuration,
                       feed: dict[str, np.ndarray], **tolerance) -> None:
    session = TvmBackend().load(Artifact.load(artifact.path), cfg, threads=1)
    expected = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None,
                                                                                         feed)
    got = session.run(feed)
    session.close()
    assert len(got) == len(expected)
    for ours, theirs in zip(got, expected, strict=True):
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, **tolerance)


def _images(batch: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(batch).normal(size=(batch, 3, 16, 16)).astype(np.float32)}


@pytest.mark.parametrize("batch", [1, 4])
def test_conv_model_matches_onnxruntime(tmp_path: Path, batch: int) -> None:
    model = _conv_model(tmp_path / "conv.onnx")
    artifact, cfg = _build(model, tmp_path / "artifact", batch=batch)
    assert sorted(artifact.files) == sorted([LIBRARY_FILE, IO_FILE])
    assert all((artifact.path / name).is_file() for name in artifact.files)
    assert artifact.model_size_bytes == (artifact.path / LIBRARY_FILE).stat().st_size > 0
    assert artifact.details["target"] == {"kind": "llvm", "num-cores": 1}
    assert artifact.details["opt_level"] == 3
    assert artifact.details["import_fallback"] is False
    assert artifact.details["import_error"] is None
    io = json.loads((artifact.path / IO_FILE).read_text())
    assert io == {"inputs": [{"name": "x", "shape": [batch, 3, 16, 16], "dtype": "float32"}],
                  "outputs": 1}
    _check_against_ort(model, artifact, cfg, _images(batch), rtol=1e-4, atol=1e-4)


def test_two_output_mlp_at_opt_level_0(tmp_path: Path) -> None:
    model = _mlp_model(tmp_path / "mlp.onnx")
    artifact, cfg = _build(model, tmp_path / "artifact", batch=4, tvm_opt_level=0)
    assert artifact.details["opt_level"] == 0
    feed = {"x": np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)}
    _check_against_ort(model, artifact, cfg, feed, rtol=1e-4, atol=1e-4)


def test_fp16_model_with_fp32_io(tmp_path: Path) -> None:
    from onnxconverter_common import float16

    model = _conv_model(tmp_path / "conv.onnx")
    half = tmp_path / "conv16.onnx"
    onnx.save(float16.convert_float_to_float16(onnx.load(model), keep_io_types=True), half)
    artifact, cfg = _build(half, tmp_path / "artifact", batch=2, precision="fp16")
    session = TvmBackend().load(artifact, cfg, threads=1)
    feed = _images(2)
    expected = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None,
                                                                                         feed)
    (got,) = session.run(feed)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected[0], rtol=2e-2, atol=2e-2)


def test_computed_reshape_imports_after_folding(tmp_path: Path) -> None:
    model = _computed_shape_model(tmp_path / "reshape.onnx")
    artifact, cfg = _build(model, tmp_path / "artifact", batch=2)
    assert artifact.details["import_fallback"] is True
    assert artifact.details["import_error"]  # why the plain import failed, kept for the record
    feed = {"x": np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)}
    _check_against_ort(model, artifact, cfg, feed, rtol=0, atol=0)


def test_unsupported_operator_is_a_one_line_build_failure(tmp_path: Path) -> None:
    nodes = [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")]
    model = _save(tmp_path / "custom.onnx", nodes,
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [])
    with pytest.raises(TrialFailed) as caught:
        _build(model, tmp_path / "artifact")
    assert caught.value.stage == "build"
    message = str(caught.value)
    assert message.startswith("TVM cannot import the model") and "Frobnicate" in message
    assert "after shape inference and folding" in message
    assert "\n" not in message


def test_dynamic_feature_dimension_is_rejected(tmp_path: Path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    model = _save(tmp_path / "dynamic.onnx", nodes,
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "features"])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "features"])], [])
    with pytest.raises(TrialFailed, match=r"input 'x' has a dynamic dimension 1 \(features\)"):
        _build(model, tmp_path / "artifact")


def test_importing_the_backend_does_not_import_tvm() -> None:
    code = "import sys, tuner.backends.tvm; assert 'tvm' not in sys.modules, 'tvm imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_load_runs_exactly_the_requested_threads(tmp_path: Path) -> None:
    # A fresh process: TVM sizes its thread pool once per process, as a measuring worker does.
    artifact, _ = _build(_conv_model(tmp_path / "conv.onnx"), tmp_path / "artifact", batch=1)
    code = textwrap.dedent(f"""
        import numpy as np, psutil, tvm
        from pathlib import Path
        from tuner.backends.base import Artifact
        from tuner.backends.tvm import TvmBackend
        from tuner.trial.config import Configuration
        before = psutil.Process().num_threads()
        session = TvmBackend().load(Artifact.load(Path({str(artifact.path)!r})),
                                    Configuration(backend="tvm"), threads=2)
        session.run({{"x": np.zeros((1, 3, 16, 16), np.float32)}})
        print(tvm.get_global_func("runtime.NumThreads")(), psutil.Process().num_threads() - before)
    """)
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True)
    # Two workers: the calling thread runs task 0 and the pool adds one thread.
    assert result.stdout.split() == ["2", "1"]

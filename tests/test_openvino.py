"""OpenVinoBackend on tiny ONNX models built here, checked against ONNX Runtime.

The engine's Configuration has no openvino keys yet and rejects the backend's name, so each
test's configuration is a SimpleNamespace with just the attributes the backend reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tuner.backends.base import Artifact
from tuner.backends.openvino import OpenVinoBackend
from tuner.backends.openvino.backend import MODEL_FILE, PROPERTIES_FILE, WEIGHTS_FILE
from tuner.backends.openvino.options import (
    EXPORT_FORMAT,
    OPTIONS,
    PRECISIONS,
    supported_precisions,
)
from tuner.backends.openvino.quantize import Validation, agreement_with, calibration_items
from tuner.errors import HardwareError, TrialFailed
from tuner.transforms.sensitivity import Probe

AVX2 = {"isa": ["sse4_2", "avx", "avx2", "fma"], "cores": 2}
# A Sapphire Rapids profile's flags: bf16 passes Podium's check whatever this host is.
AMX = {"isa": [*AVX2["isa"], "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile"], "cores": 2}
SIZE, CLASSES = 32, 10


def _config(**options) -> SimpleNamespace:
    return SimpleNamespace(**({"precision": "fp32", "batch": 1} | options))


def _save(path: Path, nodes, inputs, outputs, initializers) -> Path:
    graph = helper.make_graph(nodes, "test", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _prototypes() -> np.ndarray:
    """One tinted wave pattern per class."""
    rng = np.random.default_rng(100)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    freq = rng.uniform(1, 6, size=(CLASSES, 3, 2))
    tint = rng.uniform(-1, 1, size=(CLASSES, 3, 1, 1))
    waves = np.sin(2 * np.pi * (freq[..., 0, None, None] * xx + freq[..., 1, None, None] * yy))
    return (tint + waves).astype(np.float32)


def _images(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, rows)
    noise = 0.15 * rng.normal(size=(rows, 3, SIZE, SIZE))
    return (_prototypes()[labels] + noise).astype(np.float32)


def _conv_classifier(path: Path) -> Path:
    """image[N,3,32,32] → 5 × (Conv, Relu) → GlobalAveragePool → nearest-centroid head →
    logits[N,10]; the head is fitted to the class prototypes, so the classes are separable
    as in a trained model and int8 agreement measures quantization, not ties."""
    rng = np.random.default_rng(0)
    initializers, nodes, previous, width = [], [], "image", 3
    for i, channels in enumerate((8, 16, 16, 32, 32)):
        scale = np.sqrt(2 / (width * 9))
        initializers += [
            numpy_helper.from_array(rng.normal(scale=scale, size=(channels, width, 3, 3))
                                    .astype(np.float32), f"conv{i}.w"),
            numpy_helper.from_array(rng.normal(scale=0.1, size=channels).astype(np.float32),
                                    f"conv{i}.b")]
        nodes += [helper.make_node("Conv", [previous, f"conv{i}.w", f"conv{i}.b"], [f"c{i}"],
                                   name=f"conv{i}", pads=[1, 1, 1, 1], strides=[2 - i % 2] * 2),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}")]
        previous, width = f"r{i}", channels
    nodes += [helper.make_node("GlobalAveragePool", [previous], ["gap"], name="gap"),
              helper.make_node("Flatten", ["gap"], ["features"], name="flatten")]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])
    trunk = helper.make_model(
        helper.make_graph(nodes, "trunk", [image], [helper.make_tensor_value_info(
            "features", TensorProto.FLOAT, ["N", width])], initializers),
        opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    features = ort.InferenceSession(trunk.SerializeToString()).run(
        None, {"image": _prototypes()})[0]
    mean = features.mean(0)
    centroids = (features - mean) / np.linalg.norm(features - mean, axis=1, keepdims=True)
    initializers += [numpy_helper.from_array((centroids.T * 10).astype(np.float32), "fc.w"),
                     numpy_helper.from_array(mean.astype(np.float32), "fc.mean")]
    nodes += [helper.make_node("Sub", ["features", "fc.mean"], ["centered"], name="center"),
              helper.make_node("MatMul", ["centered", "fc.w"], ["logits"], name="fc")]
    return _save(path, nodes, [image],
                 [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])],
                 initializers)


def _weights(name: str, shape: tuple[int, ...], scale: float) -> onnx.TensorProto:
    rng = np.random.default_rng(sum(map(ord, name)))
    return numpy_helper.from_array((rng.normal(size=shape) * scale).astype(np.float32), name)


def _mlp(path: Path) -> Path:
    """x[N,32] → Gemm → Relu → Gemm → Relu → Gemm → y[N,10] (the ONNX reader splits Gemm)."""
    nodes = [helper.make_node("Gemm", ["x", "fc0.w", "fc0.b"], ["g0"], name="fc0"),
             helper.make_node("Relu", ["g0"], ["h0"], name="relu0"),
             helper.make_node("Gemm", ["h0", "fc1.w", "fc1.b"], ["g1"], name="fc1"),
             helper.make_node("Relu", ["g1"], ["h1"], name="relu1"),
             helper.make_node("Gemm", ["h1", "fc2.w", "fc2.b"], ["y"], name="fc2")]
    return _save(path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 32])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
                 [_weights("fc0.w", (32, 64), 0.25), _weights("fc0.b", (64,), 0.1),
                  _weights("fc1.w", (64, 64), 0.18), _weights("fc1.b", (64,), 0.1),
                  _weights("fc2.w", (64, 10), 0.18), _weights("fc2.b", (10,), 0.1)])


def _sequence(path: Path) -> Path:
    """tokens[N,T] int64 → embedding → MatMul → Tanh → states[N,T,16]: a 3-D output."""
    nodes = [helper.make_node("Gather", ["embedding", "tokens"], ["e"], name="embed"),
             helper.make_node("MatMul", ["e", "w"], ["m"], name="project"),
             helper.make_node("Tanh", ["m"], ["states"], name="tanh")]
    return _save(path, nodes,
                 [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["N", "T"])],
                 [helper.make_tensor_value_info("states", TensorProto.FLOAT, ["N", "T", 16])],
                 [_weights("embedding", (50, 16), 1.0), _weights("w", (16, 16), 0.3)])


def _feed(model: str, rows: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    if model == "conv":
        return {"image": _images(rows, seed)}
    if model == "mlp":
        return {"x": rng.normal(size=(rows, 32)).astype(np.float32)}
    return {"tokens": rng.integers(0, 50, size=(rows, 7)).astype(np.int64)}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("openvino-models")
    return {"conv": _conv_classifier(root / "conv.onnx"), "mlp": _mlp(root / "mlp.onnx"),
            "seq": _sequence(root / "seq.onnx")}


def _build(model: Path, out: Path, config: SimpleNamespace, example: dict[str, np.ndarray], *,
           hardware: dict = AVX2, calibration: dict[str, np.ndarray] | None = None,
           **extra) -> Artifact:
    out.mkdir(parents=True, exist_ok=True)
    return OpenVinoBackend().build(model, config, out, calibration=calibration,
                                   hardware=hardware, example=example, **extra)


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


@pytest.fixture(scope="module")
def int8_conv(models, tmp_path_factory) -> Artifact:
    return _build(models["conv"], tmp_path_factory.mktemp("int8"),
                  _config(precision="int8-static"), _feed("conv", 1),
                  calibration=_feed("conv", 32, seed=2))


@pytest.mark.parametrize("name", ["conv", "mlp", "seq"])
def test_fp32_matches_onnxruntime(models, tmp_path, name):
    config = _config(batch=4)
    artifact = _build(models[name], tmp_path, config, _feed(name, 4))
    session = OpenVinoBackend().load(artifact, config, threads=1)
    reference = ort.InferenceSession(str(models[name]))
    for seed in (1, 2):  # a second call must not see the first one's buffers
        feed = _feed(name, 4, seed)
        [actual], [expected] = session.run(feed), reference.run(None, feed)
        assert actual.shape == expected.shape and actual.dtype == np.float32
        assert _relative_error(actual, expected) <= 1e-4
    assert session.details["inference_precision"] == "f32"
    assert session.details["execution_mode"] == "ACCURACY"
    session.close()


def test_threads_respected(models, tmp_path):
    artifact = _build(models["mlp"], tmp_path, _config(), _feed("mlp", 1))
    counts = [1, 2] if len(os.sched_getaffinity(0)) >= 2 else [1]
    for threads in counts:
        session = OpenVinoBackend().load(artifact, _config(), threads=threads)
        assert session.details["threads"] == threads
        assert session.details["num_streams"] == 1 and session.details["cpu_pinning"] is True


def test_artifact_is_ir_and_properties_and_loads_in_a_fresh_process(models, tmp_path):
    feed = _feed("seq", 2)
    artifact = _build(models["seq"], tmp_path / "artifact", _config(batch=2), feed)
    assert artifact.files == [MODEL_FILE, WEIGHTS_FILE, PROPERTIES_FILE]
    assert artifact.details["export_format"] == EXPORT_FORMAT
    assert artifact.details["versions"]["openvino"] == OpenVinoBackend.versions()["openvino"]
    properties = json.loads((tmp_path / "artifact" / PROPERTIES_FILE).read_text())
    assert properties == {"INFERENCE_PRECISION_HINT": "f32", "EXECUTION_MODE_HINT": "ACCURACY",
                          "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                          "ENABLE_CPU_PINNING": True, "ENABLE_HYPER_THREADING": False}
    assert 'element_type="f16"' not in (tmp_path / "artifact" / MODEL_FILE).read_text()
    np.save(tmp_path / "tokens.npy", feed["tokens"])
    script = textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        from types import SimpleNamespace
        import numpy as np
        from tuner.backends.base import Artifact
        from tuner.backends.openvino import OpenVinoBackend
        artifact = Artifact.load(Path({str(tmp_path / "artifact")!r}))
        session = OpenVinoBackend().load(artifact, SimpleNamespace(precision="fp32"), threads=1)
        [out] = session.run({{"tokens": np.load({str(tmp_path / "tokens.npy")!r})}})
        np.save({str(tmp_path / "out.npy")!r}, out)
        print(json.dumps(session.details))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["inference_precision"] == "f32"
    [expected] = ort.InferenceSession(str(models["seq"])).run(None, feed)
    assert _relative_error(np.load(tmp_path / "out.npy"), expected) <= 1e-4


@pytest.mark.parametrize(("precision", "isa", "missing"), [
    ("bf16", AVX2["isa"], "avx512_bf16 or amx_bf16"),
    ("fp16", AMX["isa"], "avx512_fp16 or amx_fp16"),
    ("int8-static", ["neon", "asimd"], "avx2 or avx512f")])
def test_unsupported_precision_is_refused_with_the_missing_flag(models, tmp_path, precision,
                                                                isa, missing):
    with pytest.raises(HardwareError, match=f"precision {precision} .* lacks {missing}"):
        _build(models["mlp"], tmp_path, _config(precision=precision), _feed("mlp", 1),
               hardware={"isa": isa}, calibration=_feed("mlp", 8))
    assert list(tmp_path.iterdir()) == []


def test_supported_precisions_follow_the_isa():
    assert supported_precisions([]) == {"fp32"}
    assert supported_precisions(AVX2["isa"]) == {"fp32", "int8-static"}
    assert supported_precisions(AMX["isa"]) == {"fp32", "bf16", "int8-static"}
    assert supported_precisions([*AMX["isa"], "amx_bf16", "avx512_fp16"]) == set(PRECISIONS)
    assert supported_precisions(["avx512f", "amx_tile"]) == {"fp32", "int8-static"}


def test_bf16_runs_as_bf16_or_is_refused_at_load(models, tmp_path):
    """OpenVINO compiles a bf16 request on a CPU without bf16 as f32 without an error; the
    backend must not measure that as a bf16 trial."""
    import openvino as ov

    config = _config(precision="bf16")
    artifact = _build(models["conv"], tmp_path, config, _feed("conv", 1), hardware=AMX)
    assert artifact.details["properties"]["INFERENCE_PRECISION_HINT"] == "bf16"
    if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        session = OpenVinoBackend().load(artifact, config, threads=1)
        assert session.details["inference_precision"] == "bf16"
        assert "bf16" in session.details["runtime_precisions"]
    else:
        with pytest.raises(TrialFailed, match="compiled INFERENCE_PRECISION_HINT=bf16 as f32"):
            OpenVinoBackend().load(artifact, config, threads=1)


def test_int8_agrees_with_fp32_top1(models, int8_conv):
    assert int8_conv.details["nncf"]["api"] == "nncf.quantize"
    assert int8_conv.details["nncf"]["subset_size"] == 32
    assert int8_conv.details["versions"]["nncf"] == OpenVinoBackend.versions()["nncf"]
    session = OpenVinoBackend().load(int8_conv, _config(precision="int8-static"), threads=1)
    assert session.details["inference_precision"] == "f32"  # what int8 leaves in float
    assert {"u8", "i8"} & set(session.details["runtime_precisions"])
    images = _feed("conv", 200, seed=3)["image"]
    quantized = np.concatenate([session.run({"image": row[None]})[0] for row in images])
    [reference] = ort.InferenceSession(str(models["conv"])).run(None, {"image": images})
    assert np.mean(quantized.argmax(1) == reference.argmax(1)) >= 0.95


def test_int8_ignored_nodes_stay_float(models, tmp_path, int8_conv):
    config = _config(precision="int8-static", ignored_nodes=["conv0", "fc"])
    artifact = _build(models["conv"], tmp_path / "a", config, _feed("conv", 1),
                      calibration=_feed("conv", 32, seed=2))
    kept = artifact.details["nncf"]
    assert kept["ignored_nodes"] == ["conv0", "fc"]
    assert kept["quantized_tensors"] < int8_conv.details["nncf"]["quantized_tensors"]
    with pytest.raises(TrialFailed, match="NNCF refused"):
        _build(models["conv"], tmp_path / "b", _config(precision="int8-static",
                                                       ignored_nodes=["no-such-node"]),
               _feed("conv", 1), calibration=_feed("conv", 32, seed=2))


def test_int8_accuracy_control_on_held_out_rows(models, tmp_path):
    held_out = Probe(_feed("conv", 16, seed=4))
    config = _config(precision="int8-static", nncf_accuracy_control=True, max_drop=0.01)
    artifact = _build(models["conv"], tmp_path, config, _feed("conv", 1),
                      calibration=_feed("conv", 32, seed=2), held_out=held_out)
    nncf = artifact.details["nncf"]
    assert nncf["api"] == "nncf.quantize_with_accuracy_control"
    assert (nncf["drop_type"], nncf["max_drop"]) == ("relative", 0.01)
    assert nncf["validation_data"] == "16 held-out calls"  # one row each: the model's N
    calls = [{"image": row[None]} for row in held_out.inputs["image"]]
    session = ort.InferenceSession(str(models["conv"]))
    validation = Validation(calls, agreement_with([session.run(None, f) for f in calls]))
    loaded = OpenVinoBackend().load(artifact, config, threads=1)
    scores = validation.score(range(16), [loaded.run(f) for f in calls])
    assert np.mean(scores) >= 0.99


def test_held_out_validation_scores_class_outputs_by_agreement_others_by_closeness(models):
    from tuner.backends.openvino.quantize import held_out_validation

    for name, metric in (("conv", "accuracy"), ("seq", "relative_error")):
        probe = Probe(_feed(name, 4), metric=metric)
        validation = held_out_validation(models[name], probe, example=None, batch=1)
        assert len(validation.feeds) == 4
        session = ort.InferenceSession(str(models[name]))
        f32 = [session.run(None, feed) for feed in validation.feeds]
        assert min(validation.score(range(4), f32)) >= 0.999
        if name == "conv":  # class scores: the argmax turns into the argmin
            assert validation.score(range(4), [[-call[0]] for call in f32]) == [0.0] * 4
        else:  # states: 10 % off costs 10 % closeness
            scaled = validation.score(range(4), [[call[0] * 1.1] for call in f32])
            assert scaled == pytest.approx([0.9] * 4, abs=1e-3)


def test_bf16_keep_fp32_marks_the_layers_of_the_named_nodes(models, tmp_path):
    import openvino as ov

    config = _config(precision="bf16", bf16_keep_fp32=["fc0", "fc2"])
    artifact = _build(models["mlp"], tmp_path / "a", config, _feed("mlp", 1), hardware=AMX)
    # fc2's Add is named after the graph output y; its MatMul after the node.
    assert artifact.details["kept_fp32"] == ["fc0", "fc0/WithoutBiases", "fc2/WithoutBiases",
                                             "y"]
    marked = {op.get_friendly_name() for op in ov.Core().read_model(
        str(tmp_path / "a" / MODEL_FILE)).get_ops() if "DisablePrecisionConversion_0"
        in op.get_rt_info()}
    assert marked == set(artifact.details["kept_fp32"])
    with pytest.raises(TrialFailed, match=r"bf16_keep_fp32 names nodes .*: nope"):
        _build(models["mlp"], tmp_path / "b", _config(precision="bf16", bf16_keep_fp32=["nope"]),
               _feed("mlp", 1), hardware=AMX)


def _bf16_cpu() -> bool:
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@pytest.mark.skipif(not _bf16_cpu(), reason="this CPU has no bf16: OpenVINO runs f32")
def test_bf16_keep_fp32_layers_run_in_f32(models, tmp_path):
    config = _config(precision="bf16", bf16_keep_fp32=["conv2"])
    artifact = _build(models["conv"], tmp_path, config, _feed("conv", 1), hardware=AMX)
    session = OpenVinoBackend().load(artifact, config, threads=1)
    ran = {}
    for op in session._compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        for layer in info["originalLayersNames"].astype(str).split(","):
            ran[layer] = info["runtimePrecision"].astype(str)
    assert (ran["conv2"], ran["conv3"]) == ("f32", "bf16")


def test_bf16_keep_top_keeps_the_most_sensitive_nodes_by_the_emulated_ranking(models,
                                                                              tmp_path):
    config = _config(precision="bf16", bf16_keep_top=2)
    with pytest.raises(TrialFailed, match="bf16_keep_top needs held-out rows"):
        _build(models["conv"], tmp_path / "a", config, _feed("conv", 1), hardware=AMX)
    artifact = _build(models["conv"], tmp_path / "b", config, _feed("conv", 1), hardware=AMX,
                      held_out=Probe(_feed("conv", 16, seed=4)))
    ranked = artifact.details["half_sensitivity"]
    assert ranked["emulated"].startswith("bfloat16 rounding") and len(ranked["kept"]) == 2
    assert all(error <= ranked["error_all_half"] for error in ranked["error_kept_fp32"].values())
    assert set(ranked["kept"]) <= set(artifact.details["kept_fp32"])
    again = _build(models["conv"], tmp_path / "c", config, _feed("conv", 1), hardware=AMX,
                   held_out=Probe(_feed("conv", 16, seed=4)))
    assert again.details["half_sensitivity"] == ranked  # cached per model and rows


@pytest.mark.parametrize("half", ["bfloat16", "float16"])
def test_emulated_half_rounds_compute_inputs_only_where_not_kept(models, half):
    from tuner.transforms.half_emulation import COMPUTE_OPS, emulate

    model = onnx.load(str(models["conv"]))
    feed = _feed("conv", 8)
    [f32] = ort.InferenceSession(str(models["conv"])).run(None, feed)

    def run(**keep) -> np.ndarray:
        return ort.InferenceSession(emulate(model, half, **keep).SerializeToString()).run(
            None, feed)[0]

    error = _relative_error(run(), f32)
    assert {"bfloat16": 1e-3, "float16": 1e-4}[half] < error < 0.05
    everything = [n.name for n in model.graph.node if n.op_type in COMPUTE_OPS]
    np.testing.assert_array_equal(run(keep=everything), f32)


def test_dynamic_shapes_when_asked(models, tmp_path):
    config = _config(ov_static_shapes=False)
    artifact = _build(models["mlp"], tmp_path, config, _feed("mlp", 1))
    assert artifact.details["input_shapes"] == {"x": "[?,32]"}
    session = OpenVinoBackend().load(artifact, config, threads=1)
    reference = ort.InferenceSession(str(models["mlp"]))
    for rows in (1, 3):
        feed = _feed("mlp", rows)
        assert _relative_error(session.run(feed)[0], reference.run(None, feed)[0]) <= 1e-4


def test_static_artifact_refuses_other_shapes(models, tmp_path):
    artifact = _build(models["mlp"], tmp_path, _config(), _feed("mlp", 1))
    session = OpenVinoBackend().load(artifact, _config(), threads=1)
    with pytest.raises(ValueError, match="compiled for"):
        session.run(_feed("mlp", 2))


def test_calibration_items_fit_a_fixed_batch_and_carry_constants(tmp_path):
    path = _save(tmp_path / "fixed.onnx",
                 [helper.make_node("Mul", ["x", "scale"], ["y"], name="mul")],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3]),
                  helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])], [])
    rows = {"x": np.arange(30, dtype=np.float32).reshape(10, 3)}
    scale = np.ones(1, np.float32)
    items = calibration_items(onnx.load(path), rows, example={"x": rows["x"][:4],
                                                               "scale": scale}, batch=4)
    assert len(items) == 3 and all(item["x"].shape == (4, 3) for item in items)
    assert all(item["scale"] is scale for item in items)
    assert items[2]["x"][2:].tolist() == rows["x"][:2].tolist()  # the last call wraps around
    dynamic = _mlp(tmp_path / "mlp.onnx")
    items = calibration_items(onnx.load(dynamic), {"x": np.zeros((5, 32), np.float32)},
                              example=None, batch=8)
    assert len(items) == 5 and items[0]["x"].shape == (1, 32)


def test_options_are_declared_with_domains_and_defaults():
    from tuner.backends.registry import declaration_problems

    assert PRECISIONS == ("fp32", "bf16", "fp16", "int8-static")
    assert set(OpenVinoBackend.versions()) == {"openvino", "nncf"}
    assert all(option.help for option in OPTIONS)
    assert declaration_problems(OpenVinoBackend) == []


def test_a_quality_floor_sets_accuracy_controls_max_drop_unless_the_space_names_it():
    from tuner.search.space import default_space, quality_floor
    from tuner.trial.constraints import parse_constraint

    floor = quality_floor([parse_constraint("quality_ratio >= 0.97"),
                           parse_constraint("latency_p90_ms <= 5")])
    space = default_space(["v"], hardware=["aws-c7i.large"], cores=2, quality_floor=floor)
    assert space.options["max_drop"] == [0.03]
    assert space.restrict({"max_drop": 0.05}).options["max_drop"] == [0.05]
    assert default_space(["v"], hardware=["aws-c7i.large"], cores=2).options["max_drop"] == [
        0.01]  # the declared default
    assert quality_floor([parse_constraint("quality_ratio <= 0.5")]) is None


@pytest.mark.host_sensitive
@pytest.mark.parametrize("profile", ["gcp-n2-standard-4", "aws-c7i.large"])
def test_bf16_on_openvino_follows_the_host_isa(profile, local_host, capsys, digits):
    """``podium trial run --set backend=openvino --set precision=bf16`` is refused in one
    line (exit 2) on a host without native bf16, and accepted where the ISA has it; the
    host is simulated, so the answer is the profile's, not this machine's."""
    from tuner.cli import main
    from tuner.hardware import load_profile
    from tuner.trial.config import Configuration
    from tuner.trial.run import validate

    local_host(profile)
    bf16 = Configuration.parse({"backend": "openvino", "precision": "bf16"})
    if "bf16" in OpenVinoBackend.precisions_for(load_profile("local").isa):
        validate(digits, bf16)
        return
    assert main(["trial", "run", "--workload", "digits", "--set", "backend=openvino",
                 "--set", "precision=bf16"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "bf16 is not supported by the openvino backend" in err[0]

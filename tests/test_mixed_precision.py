"""Mixed-precision int8: the sensitivity ranking, its cache, and a fragile model it rescues."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests import onnx_models
from tuner.errors import ConfigError, TrialFailed
from tuner.search.space import default_space
from tuner.transforms import apply_precision, sensitivity
from tuner.transforms.sensitivity import Probe
from tuner.trial.config import Configuration
from tuner.trial.run import run_trial


@pytest.fixture(scope="module")
def fragile(tmp_path_factory):
    import workloads

    folder = tmp_path_factory.mktemp("fragile")
    model, data = onnx_models.fragile_mlp(folder / "fragile.onnx", folder / "fragile.npz")
    return workloads.from_files(model, data, name="fragile")


@pytest.fixture
def small_model(tmp_path) -> Path:
    return onnx_models.classifier(tmp_path / "small.onnx", features=8)


class CountingQuantizer:
    """Dynamic int8 through onnxruntime, counting calls (the cache must save them)."""

    def __init__(self, source: Path) -> None:
        self.source, self.calls = source, 0
        self.lock = threading.Lock()

    def __call__(self, out: Path, exclude: list[str]) -> None:
        from onnxruntime.quantization import quantize_dynamic

        with self.lock:
            self.calls += 1
        quantize_dynamic(self.source, out, op_types_to_quantize=["MatMul"],
                         nodes_to_exclude=exclude)


def _named(path: Path) -> Path:
    import onnx

    model = onnx.load(str(path))
    for index, node in enumerate(model.graph.node):
        node.name = f"{node.op_type}_{index}"
    onnx.save(model, str(path))
    return path


def _rank(model: Path, quantizer: CountingQuantizer, settings: dict) -> dict:
    probe = Probe.from_rows({"x": np.random.default_rng(2).normal(size=(32, 8))
                             .astype(np.float32)})
    return sensitivity.ranking(model, quantizer, probe, model_sha256="m", op_types={"MatMul"},
                               settings=settings)


def test_ranking_is_computed_once_and_cached(small_model, podium_home):
    model = _named(small_model)
    quantizer = CountingQuantizer(model)
    settings = {"run": uuid.uuid4().hex}
    first = _rank(model, quantizer, settings)
    assert sorted(first["ranking"]) == ["MatMul_0", "MatMul_2"]
    assert quantizer.calls == 3  # all int8, then each candidate kept fp32
    assert (podium_home / "sensitivity" / f"{first['key']}.json").is_file()
    assert _rank(model, quantizer, settings) == first
    assert quantizer.calls == 3
    other = _rank(model, quantizer, settings | {"calibration_rows": 32})
    assert other["key"] != first["key"] and quantizer.calls == 6


def test_concurrent_builds_compute_the_ranking_once(small_model):
    model = _named(small_model)
    quantizer = CountingQuantizer(model)
    settings = {"run": uuid.uuid4().hex}
    results: list[dict] = []
    threads = [threading.Thread(target=lambda: results.append(_rank(model, quantizer, settings)))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert quantizer.calls == 3
    assert len(results) == 3 and all(r == results[0] for r in results)


def test_candidates_are_capped_by_weight_size(small_model):
    model = _named(small_model)
    assert sensitivity.candidate_nodes(model, {"MatMul"}, limit=1) == ["MatMul_0"]  # 8×16
    assert sensitivity.candidate_nodes(model, {"Conv"}) == []


def test_a_cut_without_held_out_rows_is_a_build_failure(small_model, tmp_path):
    config = Configuration.parse({"precision": "int8-dynamic", "int8_keep_fp32": 1})
    with pytest.raises(TrialFailed, match="held-out rows") as caught:
        apply_precision(small_model, config, tmp_path / "out.onnx", calibration=None)
    assert caught.value.stage == "build"


def test_details_name_int8_and_fp32_nodes(small_model, tmp_path):
    model = _named(small_model)
    calibration = {"x": np.random.default_rng(3).normal(size=(16, 8)).astype(np.float32)}
    config = Configuration.parse({"precision": "int8-static", "int8_keep_fp32": 1,
                                  "int8_op_types": "matmul", "calibration_rows": 8})
    details = apply_precision(model, config, tmp_path / "out.onnx", calibration=calibration,
                              probe=Probe.from_rows(calibration))
    kept = details["int8_kept_fp32"]
    assert len(kept) == 1 and kept == details["sensitivity"]["ranking"][:1]
    assert kept[0] in details["fp32_nodes"] and kept[0] not in details["int8_nodes"]
    assert len(details["int8_nodes"]) == 1 and details["calibration_rows"] == 8
    assert not set(details["int8_nodes"]) & set(details["fp32_nodes"])


def test_a_searched_cut_rescues_a_fragile_model_and_stays_faster(fragile, protocol):
    fp32 = run_trial(fragile, Configuration(), protocol=protocol)
    assert fp32.ok, fp32.error
    space = default_space(fragile.variants, hardware=["local"], cores=1).restrict(
        {"backend": "ort", "precision": "int8-static", "calibration": "minmax",
         "per_channel": False, "int8_op_types": "all", "ort_graph_optimization": "all",
         "batch": 1})
    results = {c.int8_keep_fp32: run_trial(fragile, c, protocol=protocol)
               for c in space.configurations()}
    assert sorted(results) == [0, 2, 8]
    assert all(r.ok for r in results.values()), [r.error for r in results.values()]
    assert results[0].metrics.quality_ratio < 0.99  # naive int8 breaks the head
    feasible = [r for r in results.values() if r.metrics.quality_ratio >= 0.99]
    best = min(feasible, key=lambda r: r.metrics.latency_p50_ms)
    assert best.config["int8_keep_fp32"] > 0
    assert best.metrics.latency_p50_ms < fp32.metrics.latency_p50_ms
    details = best.artifact["details"]
    kept = details["int8_kept_fp32"]
    assert kept == details["sensitivity"]["ranking"][:best.config["int8_keep_fp32"]]
    assert kept[0].startswith("head") and kept[0] in details["fp32_nodes"]
    assert any(n.startswith("fc") for n in details["int8_nodes"])
    assert results[2].artifact["details"]["sensitivity"]["key"] == \
        results[8].artifact["details"]["sensitivity"]["key"]  # one ranking per model


# --- quantizer settings end to end: each one builds, runs, keeps quality, and shows ---

MIXED = {"precision": "int8-static", "int8_keep_fp32": 1, "per_channel": False}


def _artifact_model(podium_home: Path, result):
    import onnx

    return onnx.load(str(podium_home / "artifacts" / result.artifact["key"] / "model.onnx"))


def _initializers(model) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _activation_zero_points(model) -> list[np.ndarray]:
    values = _initializers(model)
    return [values[n.input[2]] for n in model.graph.node
            if n.op_type == "QuantizeLinear" and n.input[0] not in values]


def _quantized_weights(model) -> list[np.ndarray]:
    """Int8 initializers feeding DequantizeLinear: QDQ weights (biases are int32)."""
    values = _initializers(model)
    return [values[n.input[0]] for n in model.graph.node
            if n.op_type == "DequantizeLinear" and values.get(n.input[0]) is not None
            and values[n.input[0]].dtype == np.int8]


@pytest.mark.parametrize("precision", ["int8-static", "int8-dynamic"])
def test_quant_preprocess_can_be_switched_off(small_model, tmp_path, precision):
    calibration = {"x": np.random.default_rng(3).normal(size=(16, 8)).astype(np.float32)}
    found = {}
    for flag in (True, False):
        config = Configuration.parse({"precision": precision, "quant_preprocess": flag})
        assert config.normalized().quant_preprocess is flag
        details = apply_precision(small_model, config, tmp_path / f"{flag}.onnx",
                                  calibration=calibration)
        found[flag] = details["preprocess"]
    assert found[False] == "off" and found[True] != "off"
    with pytest.raises(ConfigError, match="int8 precisions only"):
        Configuration.parse({"precision": "fp32", "quant_preprocess": False})


@pytest.fixture(scope="module")
def mixed_qdq(fragile):
    from tests.conftest import FAST_PROTOCOL

    result = run_trial(fragile, Configuration.parse(MIXED), protocol=FAST_PROTOCOL)
    assert result.ok, result.error
    return result


def _trial(fragile, protocol, **changes):
    result = run_trial(fragile, Configuration.parse(MIXED | changes), protocol=protocol)
    assert result.ok, result.error
    assert result.metrics.quality_ratio >= 0.99  # the head stays fp32 under every setting
    assert result.metrics.latency_p50_ms > 0
    details = result.artifact["details"]
    assert details["int8_kept_fp32"][0].startswith("head")
    return result, details


@pytest.mark.slow
def test_qoperator_builds_integer_operators_without_qdq_pairs(fragile, protocol, podium_home):
    result, details = _trial(fragile, protocol, quant_format="qoperator")
    model = _artifact_model(podium_home, result)
    integer = {"QLinearConv", "QLinearMatMul", "MatMulInteger", "QGemm"}
    assert set(details["int8_op_types"]) <= integer | {"QLinearAdd", "QLinearRelu"}
    assert sum(details["int8_op_types"].get(op, 0) for op in integer) == 3  # fc1..fc3
    ops = [n.op_type for n in model.graph.node]
    # Weights live inside the integer operators: no DequantizeLinear of an initializer,
    # and activations are quantized once at the input and dequantized once before the head.
    assert not _quantized_weights(model)
    assert ops.count("QuantizeLinear") == 1 and ops.count("DequantizeLinear") == 1


@pytest.mark.slow
def test_symmetric_activations_put_every_zero_point_at_the_midpoint(fragile, protocol,
                                                                    podium_home, mixed_qdq):
    result, _ = _trial(fragile, protocol, activation_symmetric=True)
    # uint8 activations (ORT's fast U8S8 path); symmetric ranges centre them on 128,
    # the same grid as int8 with zero point 0.
    symmetric = _activation_zero_points(_artifact_model(podium_home, result))
    assert symmetric and all(z.dtype == np.uint8 and int(z) == 128 for z in symmetric)
    default = _activation_zero_points(_artifact_model(podium_home, mixed_qdq))
    assert any(int(z) != 128 for z in default)  # ReLU outputs get zero point 0 by default


@pytest.mark.slow
def test_reduce_range_keeps_weights_in_seven_bits(fragile, protocol, podium_home, mixed_qdq):
    result, _ = _trial(fragile, protocol, reduce_range=True)
    reduced = _quantized_weights(_artifact_model(podium_home, result))
    full = _quantized_weights(_artifact_model(podium_home, mixed_qdq))
    assert len(reduced) == len(full) == 3
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in reduced) <= 64
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in full) == 127


# --- one calibration for the whole ranking ---

def _quantize_module():
    import importlib

    # The package re-exports a function named ``quantize`` over its submodule's name.
    return importlib.import_module("onnxruntime.quantization.quantize")


def _count_calibrations(monkeypatch) -> list[int]:
    quantize_module = _quantize_module()
    calls = [0]
    real = quantize_module.create_calibrator

    def counting(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(quantize_module, "create_calibrator", counting)
    return calls


def test_the_ranking_calibrates_once_and_ranks_as_before(fragile, tmp_path, monkeypatch):
    calls = _count_calibrations(monkeypatch)
    config = Configuration.parse(MIXED)

    def build(home: str) -> dict:
        monkeypatch.setenv("PODIUM_HOME", str(tmp_path / home))  # no cached ranking
        calls[0] = 0
        return apply_precision(fragile.model_path(None), config, tmp_path / f"{home}.onnx",
                               calibration=fragile.calib_inputs,
                               probe=Probe.from_rows(fragile.eval_inputs))

    reused = build("reuse")
    assert calls[0] == 1 and len(reused["calibration_ranges"]) == 1
    # Without the saved ranges every quantization recalibrates, as before.
    monkeypatch.setattr(_quantize_module(), "save_tensors_data", lambda *args, **kwargs: None)
    recalibrated = build("recalibrate")
    candidates = len(reused["sensitivity"]["ranking"])
    assert candidates > 1 and calls[0] == candidates + 2  # all int8, each kept, final
    assert reused["sensitivity"]["ranking"] == recalibrated["sensitivity"]["ranking"]
    assert reused["sensitivity"]["error_all_int8"] == pytest.approx(
        recalibrated["sensitivity"]["error_all_int8"], rel=1e-9)
    assert (tmp_path / "reuse.onnx").read_bytes() == (tmp_path / "recalibrate.onnx").read_bytes()


def test_trials_with_other_quantizer_settings_reuse_the_calibration(fragile, tmp_path,
                                                                   monkeypatch):
    calls = _count_calibrations(monkeypatch)
    monkeypatch.setenv("PODIUM_HOME", str(tmp_path))
    keys = set()
    for changes in ({}, {"reduce_range": True}, {"quant_format": "qoperator"},
                    {"int8_keep_fp32": 0}):
        details = apply_precision(fragile.model_path(None), Configuration.parse(MIXED | changes),
                                  tmp_path / "out.onnx", calibration=fragile.calib_inputs,
                                  probe=Probe.from_rows(fragile.eval_inputs))
        keys.update(details["calibration_ranges"])
    assert calls[0] == 1 and len(keys) == 1
    details = apply_precision(fragile.model_path(None),
                              Configuration.parse(MIXED | {"calibration_rows": 16}),
                              tmp_path / "out.onnx", calibration=fragile.calib_inputs,
                              probe=Probe.from_rows(fragile.eval_inputs))
    assert calls[0] == 2 and set(details["calibration_ranges"]).isdisjoint(keys)


# --- graph clean-up as a configuration key ---

def _foldable(path: Path) -> Path:
    """The small classifier with its first weight behind Transpose(Identity(constant)),
    which onnxscript folds away; outputs are unchanged."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_models.classifier(path, features=8)))
    weights = {t.name: t for t in model.graph.initializer}
    w1 = numpy_helper.to_array(weights["w1"])
    model.graph.initializer.remove(weights["w1"])
    model.graph.initializer.append(numpy_helper.from_array(w1.T.copy(), "w1_t"))
    model.graph.node.insert(0, helper.make_node("Identity", ["w1_t"], ["w1_id"], name="id"))
    model.graph.node.insert(1, helper.make_node("Transpose", ["w1_id"], ["w1"], name="t"))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _zipmap_classifier(folder: Path) -> tuple[Path, Path]:
    """A scikit-learn classifier scored on its probabilities, with skl2onnx's ZipMap left
    as an unused branch: ORT runs it, but its map-typed value makes onnxscript's IR fail."""
    import onnx
    from onnx import TensorProto, helper
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = to_onnx(LogisticRegression().fit(x, y), x[:1])
    (zipmap,) = [n for n in model.graph.node if n.op_type == "ZipMap"]
    outputs = list(model.graph.output)
    del model.graph.output[:]
    model.graph.value_info.extend(o for o in outputs if o.name == zipmap.output[0])
    model.graph.output.append(helper.make_tensor_value_info(zipmap.input[0], TensorProto.FLOAT,
                                                            ["N", 2]))
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "zipmap.onnx"))
    np.savez(folder / "zipmap.npz", X=x, labels=y)
    return folder / "zipmap.onnx", folder / "zipmap.npz"


def test_onnxscript_cleanup_folds_constants_and_keeps_outputs(tmp_path):
    import workloads

    model = _foldable(tmp_path / "foldable.onnx")
    workload = workloads.from_files(model, onnx_models.data(tmp_path / "d.npz", rows=60),
                                    name="foldable")
    from tests.conftest import FAST_PROTOCOL

    plain = run_trial(workload, Configuration(), protocol=FAST_PROTOCOL)
    cleaned = run_trial(workload, Configuration(graph_cleanup="onnxscript"),
                        protocol=FAST_PROTOCOL)
    assert plain.ok and cleaned.ok, (plain.error, cleaned.error)
    assert plain.artifact["key"] != cleaned.artifact["key"]  # part of the build key
    assert "graph_cleanup" not in plain.artifact["details"]
    summary = cleaned.artifact["details"]["graph_cleanup"]
    assert summary["method"] == "onnxscript"
    assert summary["nodes_before"] == 6 and summary["nodes_after"] == 4
    assert cleaned.metrics.quality_ratio == pytest.approx(1.0)


@pytest.mark.slow
def test_a_failing_cleanup_fails_its_trial_and_not_the_study(tmp_path):
    import workloads
    from tests.conftest import FAST_PROTOCOL
    from tuner.search.optimize import optimize

    workload = workloads.from_files(*_zipmap_classifier(tmp_path), name="zipmap")
    failed = run_trial(workload, Configuration(graph_cleanup="onnxscript"),
                       protocol=FAST_PROTOCOL)
    assert not failed.ok and failed.failed_stage == "build"
    assert "graph clean-up (onnxscript) failed" in failed.error
    assert "Map types are not supported" in failed.error  # the root cause, not a wrapper
    result = optimize(workload, ["latency_p50_ms"], ["quality_ratio >= 0.99"], trials=2,
                      space={"backend": "ort", "precision": "fp32", "threads": 1, "batch": 1,
                             "ort_graph_optimization": "all",
                             "graph_cleanup": ["none", "onnxscript"]},
                      sampler="grid", storage=f"sqlite:///{tmp_path / 'study.db'}",
                      study="cleanup", protocol=FAST_PROTOCOL, warm_start=False)
    outcome = {r.config["graph_cleanup"]: r for r in result.results
               if r.config["threads"] == 1}
    assert set(outcome) == {"none", "onnxscript"}
    assert outcome["none"].ok, outcome["none"].error
    assert not outcome["onnxscript"].ok
    assert outcome["onnxscript"].failed_stage == "build"
    # The failed trial is never the answer. (Whether "none" is feasible also depends on its
    # stability verdict, which a µs-scale model on a shared VM does not always earn.)
    assert outcome["onnxscript"] not in result.feasible
    assert result.best is None or result.best.config["graph_cleanup"] == "none"

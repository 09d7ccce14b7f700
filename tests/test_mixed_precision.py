"""Mixed-precision int8: the sensitivity ranking, its cache, and a fragile model it rescues."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests import onnx_models
from tuner.config import Configuration
from tuner.errors import TrialFailed
from tuner.space import default_space
from tuner.transforms import apply_precision, sensitivity
from tuner.transforms.sensitivity import Probe
from tuner.trial import run_trial


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

"""Real trials on the digits workload: every precision, the cache, failures."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace

import pytest

from tuner.errors import ConfigError, InputError
from tuner.knowledge.fingerprint import workload_fingerprint
from tuner.trial.config import Configuration
from tuner.trial.results import METRICS, TrialResult
from tuner.trial.run import run_trial

PRECISIONS = [
    {"precision": "fp32"},
    {"precision": "fp16"},
    {"precision": "int8-dynamic"},
    {"precision": "int8-dynamic", "per_channel": True},
    {"precision": "int8-static", "calibration": "minmax"},
    {"precision": "int8-static", "calibration": "entropy"},
    {"precision": "int8-static", "calibration": "percentile"},
    {"precision": "int8-static", "per_channel": True},
]


@pytest.mark.parametrize("values", PRECISIONS, ids=lambda v: "-".join(map(str, v.values())))
def test_every_precision_builds_and_measures(digits, protocol, values):
    result = run_trial(digits, Configuration.parse({"variant": "mlp-64", **values}),
                       protocol=protocol)
    assert result.ok, result.error
    m = result.metrics
    assert set(METRICS) <= set(m.model_dump())
    assert 0 < m.latency_p50_ms <= m.latency_p90_ms <= m.latency_p99_ms
    assert m.throughput_per_s > 0 and m.model_size_bytes > 0 and m.peak_rss_bytes > 0
    assert 0.85 <= m.quality <= 1.0
    assert m.quality_ratio == pytest.approx(m.quality / digits.reference_quality)
    assert m.power_source == "estimated_tdp" and m.price_source.startswith("estimate")
    assert m.stability is not None and m.cv >= 0
    assert result.measurement["calls"] >= protocol.p99_calls
    assert result.measurement["eval_samples"] == digits.n_eval
    assert result.hardware.cpus == sorted(os.sched_getaffinity(0))[:1]  # the first usable
    if values["precision"].startswith("int8"):
        assert result.artifact["details"]["int8_op_types"]


def test_reference_fp32_reproduces_reference_quality(digits, protocol):
    result = run_trial(digits, Configuration(), protocol=protocol)
    assert result.workload.variant == digits.reference
    assert result.metrics.quality == pytest.approx(digits.reference_quality)
    assert result.metrics.quality_ratio == pytest.approx(1.0)


def test_batch_and_threads_are_honoured(digits, protocol):
    result = run_trial(digits, Configuration.parse({"batch": 7, "threads": 2,
                                                    "ort_graph_optimization": "basic"}),
                       protocol=protocol)
    assert result.ok, result.error
    assert result.measurement["eval_samples"] == digits.n_eval  # padding rows dropped
    assert result.hardware.cpus == sorted(os.sched_getaffinity(0))[:2]


def test_second_build_is_a_cache_hit(digits, protocol, podium_home):
    config = Configuration.parse({"variant": "linear", "precision": "int8-dynamic"})
    first = run_trial(digits, config, protocol=protocol)
    second = run_trial(digits, config.with_updates(threads=2), protocol=protocol)
    assert second.artifact["cache_hit"] is True
    assert first.artifact["key"] == second.artifact["key"]
    assert (podium_home / "artifacts" / first.artifact["key"]).is_dir()


def test_an_artifacts_quality_is_scored_once_where_the_protocol_reuses_it(digits, protocol):
    """A search's twins of one artifact (other threads, session options) read its quality
    back; without ``reuse_quality`` (reproduce, verify) it is scored afresh."""
    reuse = replace(protocol, reuse_quality=True)
    values = {"variant": "linear", "precision": "int8-dynamic"}
    first = run_trial(digits, Configuration.parse(values), protocol=reuse)
    twin = run_trial(digits, Configuration.parse(values | {"ort_graph_optimization": "basic"}),
                     protocol=reuse)
    fresh = run_trial(digits, Configuration.parse(values), protocol=protocol)
    assert first.ok and twin.ok and fresh.ok
    assert first.artifact["key"] == twin.artifact["key"] == fresh.artifact["key"]
    assert twin.measurement["quality_reused"]["scored_at"]
    assert "quality_reused" not in fresh.measurement
    assert twin.metrics.quality == first.metrics.quality == fresh.metrics.quality
    assert twin.measurement["eval_samples"] == digits.n_eval


def test_record_round_trips_as_json(digits, protocol, tmp_path):
    result = run_trial(digits, Configuration.parse({"variant": "linear"}), protocol=protocol)
    path = tmp_path / "trial.json"
    result.to_json(path)
    again = TrialResult.from_json(path.read_text())
    assert again == result
    record = json.loads(path.read_text())
    assert record["workload"]["sha256"] == digits.sha256
    assert record["packages"]["onnxruntime"] and record["hardware"]["fingerprint"]
    assert record["workload"]["fingerprint"] == workload_fingerprint(digits).as_dict()


def test_failed_build_is_a_failed_trial_and_caches_nothing(tmp_path, protocol, podium_home):
    import warnings

    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    import workloads

    # skl2onnx writes the ai.onnx.ml LinearClassifier op: ORT runs it, TVM cannot import it.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = LogisticRegression().fit(x, y)
        model = to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset=17)
    (tmp_path / "lr.onnx").write_bytes(model.SerializeToString())
    np.savez(tmp_path / "lr.npz", X=x)
    workload = workloads.from_files(tmp_path / "lr.onnx", tmp_path / "lr.npz")
    before = set((podium_home / "artifacts").iterdir())
    result = run_trial(workload, Configuration.parse({"backend": "tvm"}), protocol=protocol)
    assert not result.ok and result.failed_stage == "build"
    assert "TVM" in result.error and "\n" not in result.error
    assert set((podium_home / "artifacts").iterdir()) == before


def test_a_crashing_worker_is_a_failed_trial(digits, protocol, tmp_path, monkeypatch):
    crasher = tmp_path / "crash.sh"
    crasher.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crasher.chmod(crasher.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PODIUM_WORKER_PYTHON", str(crasher))
    result = run_trial(digits, Configuration.parse({"variant": "linear", "precision": "fp16"}),
                       protocol=protocol)
    assert not result.ok and "SIGSEGV" in result.error


def test_a_hanging_worker_times_out(digits, protocol):
    result = run_trial(digits, Configuration.parse({"variant": "linear", "batch": 3}),
                       protocol=protocol, timeout_s=0.05)
    assert not result.ok and "time limit" in result.error


@pytest.mark.parametrize(("values", "error"), [
    ({"variant": "nope"}, "no variant 'nope'"),
    ({"hardware": "aws-c7i.large"}, "not available on this node"),
    ({"hardware": "nope"}, "unknown hardware profile"),
])
def test_bad_configurations_are_refused_before_building(digits, values, error):
    with pytest.raises(InputError) as caught:
        run_trial(digits, Configuration.parse(values))
    assert error in str(caught.value)


@pytest.mark.host_sensitive
def test_more_threads_than_the_local_host_has_are_refused_before_building(digits):
    from tuner.hardware import load_profile

    cores = load_profile("local").cores
    with pytest.raises(InputError, match=f"exceeds the cores available \\(local has {cores},"):
        run_trial(digits, Configuration(threads=cores + 1))


def test_user_model_with_fixed_batch_refuses_other_batches(tmp_path):
    import workloads
    from tests import onnx_models

    model = onnx_models.classifier(tmp_path / "fixed.onnx", batch=1)
    wl = workloads.from_files(model, onnx_models.data(tmp_path / "d.npz"))
    with pytest.raises(ConfigError, match="fixed batch size of 1"):
        run_trial(wl, Configuration.parse({"batch": 4}))
    assert os.sched_getaffinity(0)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tvm_trial_end_to_end(digits, protocol, precision):
    result = run_trial(digits, Configuration.parse(
        {"variant": "mlp-64", "backend": "tvm", "precision": precision, "batch": 4}),
        protocol=protocol)
    assert result.ok, result.error
    assert result.artifact["details"]["target"]["kind"] == "llvm"
    assert result.metrics.model_size_bytes > 0
    assert result.metrics.quality_ratio >= 0.97
    assert result.measurement["eval_samples"] == digits.n_eval


def test_tvm_features_change_the_artifact(digits):
    from tuner.hardware import load_profile
    from tuner.trial.build import artifact_key, build_artifact

    profile = load_profile("local")
    native = Configuration.parse({"variant": "linear", "backend": "tvm"}).normalized()
    generic = native.with_updates(tvm_features="generic").normalized()
    assert artifact_key(digits, native, profile) != artifact_key(digits, generic, profile)
    artifact, _ = build_artifact(digits, generic, profile)
    assert artifact.details["target"]["mcpu"] == "x86-64"


def test_a_quiet_core_is_not_contended(digits, protocol):
    from tuner.trial.measure import CONTENDED

    quiet = run_trial(digits, Configuration.parse({"threads": 1}), protocol=protocol, cpus=[0])
    assert quiet.ok, quiet.error
    assert quiet.measurement["contention"] < CONTENDED
    assert not quiet.measurement.get("contended")
    # Unstable it may still be (this VM now and then halves a µs-scale model's speed
    # mid-run: block medians 0.030 vs 0.018 ms with the core quiet), but never blamed on
    # other processes.
    assert "other processes" not in (quiet.instability() or "")


def test_another_process_on_the_measured_core_voids_the_measurement(digits, protocol,
                                                                      busy_core0):
    """A busy process sharing the pinned core slows every block alike (the CV stays low),
    so the trial must see the foreign CPU time itself: unstable, re-measured once, and
    marked contended."""
    from tuner.trial.measure import CONTENDED
    from tuner.trial.results import Stability

    busy = run_trial(digits, Configuration.parse({"threads": 1}), protocol=protocol, cpus=[0])
    assert busy.ok, busy.error
    assert busy.measurement["contention"] > CONTENDED
    assert busy.measurement["contended"] and busy.measurement["remeasured"]
    assert busy.metrics.stability == Stability.UNSTABLE
    assert "other processes took" in busy.instability()


def test_a_long_lived_process_keeps_a_bounded_number_of_fingerprints(tmp_path, monkeypatch):
    """`podium referee` re-runs submission after submission in one process: the fingerprints
    it keeps are the latest few, not one per workload it ever saw."""
    import workloads
    from tests import onnx_models
    from tuner.trial import run as trial

    monkeypatch.setattr(trial, "FINGERPRINTS_KEPT", 2)
    monkeypatch.setattr(trial, "_FINGERPRINTS", {})
    seen = []
    for seed in range(3):
        model = onnx_models.classifier(tmp_path / f"m{seed}.onnx", seed=seed)
        wl = workloads.from_files(model, onnx_models.data(tmp_path / f"d{seed}.npz"))
        assert trial._fingerprint(wl) == workload_fingerprint(wl).as_dict()
        seen.append(wl.sha256)
    assert list(trial._FINGERPRINTS) == seen[1:]


def test_fp16_keeps_a_float_cast_of_an_integer_path_in_fp32(tmp_path):
    import numpy as np
    import onnxruntime as ort

    from tests import onnx_models
    from tuner.transforms import apply_precision

    model = onnx_models.one_hot_mixer(tmp_path / "one_hot.onnx")
    out = tmp_path / "fp16.onnx"
    details = apply_precision(model, Configuration.parse({"precision": "fp16"}), out,
                              calibration=None)
    assert details["fp16_kept_fp32"] == ["one_hot_/Cast_1"]
    rng = np.random.default_rng(0)
    feed = {"x": rng.normal(size=(6, 8)).astype(np.float32), "ids": np.arange(6) % 5}
    [expected] = ort.InferenceSession(str(model)).run(None, feed)
    [actual] = ort.InferenceSession(str(out)).run(None, feed)
    np.testing.assert_allclose(actual, expected, atol=5e-3)
    plain = onnx_models.classifier(tmp_path / "plain.onnx")
    assert apply_precision(plain, Configuration.parse({"precision": "fp16"}),
                           tmp_path / "plain16.onnx", calibration=None)["fp16_kept_fp32"] == []

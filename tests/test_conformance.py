"""The conformance set (tests/conformance_models.py) through ``podium trial run``.

Every case runs on every backend as a user model, in-process like a user's command line:
an unchanged fp32 model must complete at quality 1.0 on ORT (the reference itself) and,
on TVM, match the reference to float rounding; a backend a case does not list must fail
cleanly (exit 1, one reason naming the stage). The layout the workload infers is checked
without running anything, and the refusals exit 2 with one line that says what to do.
"""

from __future__ import annotations

import functools
import json
import os

import onnx
import onnxruntime as ort
import pytest

import workloads
from tests.conformance_models import CASES, NEWEST_OPSET, REFUSALS, Case, Refusal, recurrent
from tests.conformance_models import mlp as opset_mlp
from tuner.cli import main
from tuner.trial import run as trial_run
from workloads.layout import parse_hints

BACKENDS = ("ort", "tvm", "openvino")
# TVM computes in float32 with its own kernels: the same top-1 classes, and outputs scored
# by relative error off by float rounding (2.4e-7 on the recurrent state here).
TVM_QUALITY = 0.9999


@pytest.fixture
def fast_protocol(monkeypatch):
    """``podium trial run`` with the protocol's minimums shortened (conftest's), so each
    trial measures for about a second: quality is what this suite checks."""
    from tests.conftest import FAST_PROTOCOL

    # The command imports run_trial from its module when it runs, so this is what it calls.
    monkeypatch.setattr(trial_run, "run_trial",
                        functools.partial(trial_run.run_trial, protocol=FAST_PROTOCOL))


# On the other backends, by default, the cases whose shapes reach their own code: static
# shapes resolved from the data (-1, 0, fixed batch), batch axes and constants, int64
# inputs, several and 3-D outputs, an op one of them lacks. PODIUM_CONFORMANCE=full runs every
# case on every backend (all green when this set was written: ORT 19/19, OpenVINO 19/19,
# TVM 18/19 with the GRU refused cleanly); CI runs this subset (on TVM a smaller one) to
# stay within its time.
OTHER_BACKEND_CASES = {"minus1_dims", "float_and_int64_inputs", "output_3d_sequence",
                       "two_outputs_both_scored", "recurrent_state_axis1",
                       "zero_as_unknown_batch", "fixed_batch_1", "constant_mask",
                       "recurrent_gru_op"}
# TVM compiles each case (~10 s): by default the ones that reach different code of its own
# (static shapes from -1 dims, a state batched on axis 1, several outputs, an op it lacks).
TVM_CASES = {"minus1_dims", "recurrent_state_axis1", "two_outputs_both_scored",
             "recurrent_gru_op"}


def _trial_params() -> list:
    full = os.environ.get("PODIUM_CONFORMANCE") == "full"
    return [pytest.param(case, backend, id=f"{case.name}-{backend}",
                         marks=[pytest.mark.slow] if backend == "tvm" else [])
            for case in CASES for backend in BACKENDS
            if backend == "ort" or full
            or case.name in (TVM_CASES if backend == "tvm" else OTHER_BACKEND_CASES)]


@pytest.mark.parametrize(("case", "backend"), _trial_params())
def test_trial_run(case: Case, backend: str, tmp_path, capsys, fast_protocol):
    model, data = case.build(tmp_path / "files")
    out = tmp_path / "trial.json"
    backend_flag = [] if backend == "ort" else ["--set", f"backend={backend}"]  # ort: default
    code = main(["trial", "run", "--model", str(model), "--data", str(data), *backend_flag,
                 *case.flags(), "--json", str(out)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    if backend not in case.backends:
        assert code == 1, captured.err
        record = json.loads(out.read_text())
        assert record["state"] == "failed" and record["failed_stage"] == "build"
        assert backend.upper() in record["error"] and "\n" not in record["error"]
        # The console soft-wraps long messages; what it says is the record's reason.
        said = " ".join(captured.err.split())
        assert " ".join(f"trial failed (build): {record['error']}".split()) in said, said
        return
    assert code == 0, captured.err
    record = json.loads(out.read_text())
    assert record["state"] == "complete", record["error"]
    metrics = record["metrics"]
    if backend == "ort":
        assert (metrics["quality"], metrics["quality_ratio"]) == (1.0, 1.0), metrics
    else:
        assert metrics["quality_ratio"] >= TVM_QUALITY, metrics
        assert metrics["quality"] >= TVM_QUALITY, metrics


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_inferred_layout(case: Case, tmp_path):
    model, data = case.build(tmp_path)
    workload = workloads.from_files(model, data,
                                    inputs=parse_hints(case.inputs, kind="inputs"),
                                    outputs=parse_hints(case.outputs, kind="outputs"))
    assert workload.layout.inputs == case.layout_inputs
    assert workload.layout.outputs == case.layout_outputs
    assert workload.layout.unscored == case.unscored
    assert workload.scored_outputs == case.scored


@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda refusal: refusal.name)
def test_refusal_exits_2_with_one_line(refusal: Refusal, tmp_path, capsys, podium_home):
    model, data = refusal.build(tmp_path)
    cached = {path.relative_to(podium_home) for path in podium_home.rglob("*")}
    code = main(["trial", "run", "--model", str(model), "--data", str(data), *refusal.flags])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, captured.err
    assert "Traceback" not in captured.out + captured.err
    assert all(text in lines[0] for text in refusal.says), lines[0]
    assert {path.relative_to(podium_home) for path in podium_home.rglob("*")} == cached


def test_the_newest_opset_is_onnx_s_own_and_onnxruntime_loads_it(tmp_path):
    assert onnx.defs.onnx_opset_version() == NEWEST_OPSET
    model, _ = opset_mlp(tmp_path, opset=NEWEST_OPSET)
    ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])


def test_the_recurrent_model_keeps_its_state_on_axis_1(tmp_path):
    """The state really is batched on axis 1: row i of y depends on state[:, i] only."""
    import numpy as np

    model, data = recurrent(tmp_path)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    with np.load(data) as npz:
        feed = {name: npz[name] for name in npz.files}
    whole = session.run(None, feed)
    row = session.run(None, {"x": feed["x"][3:4], "state": feed["state"][:, 3:4],
                             "sr": feed["sr"]})
    np.testing.assert_allclose(row[0], whole[0][3:4], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(row[1], whole[1][:, 3:4], rtol=1e-5, atol=1e-6)

"""The podium CLI: exit codes, one-line errors, no traceback, nothing cached on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests import onnx_models
from tuner.cli import main


def _snapshot(home):
    return {p.relative_to(home) for p in home.rglob("*")}


def test_trial_run_writes_json(tmp_path, capsys, digits):
    out = tmp_path / "t.json"
    code = main(["trial", "run", "--workload", "digits", "--set", "variant=linear",
                 "--json", str(out)])
    assert code == 0
    record = json.loads(out.read_text())
    assert record["state"] == "complete" and record["metrics"]["latency_p90_ms"] > 0
    assert "latency_p90_ms" in capsys.readouterr().out


def test_listings(capsys):
    assert main(["workloads", "list"]) == 0
    assert main(["hardware", "list"]) == 0
    assert main(["hardware", "show", "local"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "aws-c7i.large" in out and "fingerprint" in out


def _bad_profiles(tmp_path, monkeypatch):
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "broken.toml").write_text("name = 'broken'\ncores = [\n")
    monkeypatch.setenv("PODIUM_HARDWARE_PROFILES", str(folder))
    return ["hardware", "show", "broken"]


def _bad_model(tmp_path, monkeypatch):
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07garbage")
    onnx_models.data(tmp_path / "d.npz")
    return ["trial", "run", "--model", str(tmp_path / "m.onnx"), "--data", str(tmp_path / "d.npz")]


def _mismatched_npz(tmp_path, monkeypatch):
    onnx_models.classifier(tmp_path / "m.onnx")
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 3), np.float32))
    return ["trial", "run", "--model", str(tmp_path / "m.onnx"), "--data", str(tmp_path / "d.npz")]


def _nan_model(tmp_path, monkeypatch):
    onnx_models.nan_model(tmp_path / "m.onnx")
    np.savez(tmp_path / "d.npz", x=np.ones((10, 4), np.float32))
    return ["trial", "run", "--model", str(tmp_path / "m.onnx"), "--data", str(tmp_path / "d.npz")]


CASES = {
    "unknown workload": (lambda t, m: ["trial", "run", "--workload", "nope"], "unknown workload"),
    "unknown key": (lambda t, m: ["trial", "run", "--set", "speed=max"], "unknown configuration"),
    "unknown value": (lambda t, m: ["trial", "run", "--set", "precision=int4"], "precision"),
    "invalid combination": (lambda t, m: ["trial", "run", "--set", "backend=tvm", "--set",
                                          "precision=int8-static"],
                            "int8-static is not one of tvm's"),
    "unknown hardware": (lambda t, m: ["trial", "run", "--set", "hardware=cray-1"],
                         "unknown hardware profile"),
    "malformed profile": (_bad_profiles, "broken.toml"),
    "corrupt onnx": (_bad_model, "not a readable ONNX"),
    "mismatched npz": (_mismatched_npz, "shape"),
    "nan outputs": (_nan_model, "NaN"),
    "model without data": (lambda t, m: ["trial", "run", "--model", "x.onnx"], "go together"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_line(case, tmp_path, monkeypatch, capsys, podium_home,
                                         digits):
    make_args, fragment = CASES[case]
    args = make_args(tmp_path, monkeypatch)
    before = _snapshot(podium_home)
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert fragment in lines[0] and "Traceback" not in captured.err + captured.out
    assert _snapshot(podium_home) == before

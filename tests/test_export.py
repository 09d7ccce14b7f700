"""``podium export``: bundles that run without Podium, byte-identical files, --verify, refusals.

Every bundle here is run by its own ``predict.py`` in a separate Python without Podium: a
fresh virtualenv holding only the bundles' requirements.txt (the user model's bundles, one
per backend), or one where ``tuner`` and ``workloads`` cannot be imported; its outputs are
checked against the values the trial recorded while it was measured.
"""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tuner
import workloads
from tests import conformance_models
from tuner.cli import main
from tuner.search.result import pick_record
from tuner.trial.bundle import (
    INFERENCE_FILE,
    SAMPLE_FILE,
    export_bundle,
    output_sample,
    sample_mismatch,
)
from tuner.trial.config import Configuration
from tuner.trial.results import TrialResult, TrialState
from tuner.trial.run import run_trial
from workloads.paths import cache_dir
from workloads.reference import run_in_batches

ROOT = Path(__file__).resolve().parents[1]
# Runs predict.py as ``python predict.py IN OUT`` would, with Podium made unimportable.
WITHOUT_PODIUM = ("import runpy, sys\n"
                  "sys.modules['tuner'] = sys.modules['workloads'] = None\n"
                  "sys.argv = ['predict.py', *sys.argv[1:]]\n"
                  "runpy.run_path('predict.py', run_name='__main__')\n")
STANDALONE_IMPORTS = {"__future__", "collections", "importlib", "json", "os", "pathlib", "sys",
                      "time", "typing", "numpy", "onnxruntime", "openvino", "tvm"}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _predict(bundle: Path, inputs: Path, out: Path, *, python: str = sys.executable,
             block: bool = True) -> dict[str, np.ndarray]:
    command = [python, "-c", WITHOUT_PODIUM] if block else [python, "predict.py"]
    done = subprocess.run([*command, str(inputs), str(out)], cwd=bundle, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    with np.load(out) as npz:
        return {k: npz[k] for k in npz.files}


def _matches_trial(bundle: Path, outputs: dict[str, np.ndarray]) -> None:
    spec = json.loads((bundle / INFERENCE_FILE).read_text())
    names = [o["name"] for o in spec["outputs"]]
    assert list(outputs) == names
    problem = sample_mismatch(spec["sample"]["outputs"],
                              output_sample([outputs[n] for n in names]))
    assert problem is None, problem


@pytest.fixture(scope="module")
def int8_trial(digits, protocol, tmp_path_factory):
    """A measured int8-static digits trial and its record as ``trial run --json`` writes it."""
    result = run_trial(digits, Configuration.parse({"variant": "mlp-64",
                                                    "precision": "int8-static"}),
                       protocol=protocol)
    assert result.ok, result.error
    path = tmp_path_factory.mktemp("record") / "trial.json"
    result.to_json(path)
    return result, path


def test_standalone_code_imports_only_numpy_and_its_engine():
    files = [*(ROOT / "tuner/backends/standalone").glob("*.py"),
             ROOT / "tuner/trial/bundle_predict.py"]
    for path in files:
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add((node.module or "").split(".")[0])
        assert imported <= STANDALONE_IMPORTS, (path.name, imported - STANDALONE_IMPORTS)


def test_int8_bundle_is_byte_identical_loads_and_verifies(int8_trial, tmp_path, capsys):
    record, path = int8_trial
    bundle = tmp_path / "bundle"
    assert main(["export", str(path), str(bundle)]) == 0
    spec = json.loads((bundle / INFERENCE_FILE).read_text())
    # The files that were timed, byte for byte: the cache's, and the trial's checksums.
    cached = cache_dir("artifacts") / record.artifact["key"]
    assert set(spec["files"]) == set(record.artifact["files"]) == {"model.onnx"}
    for name, sha in spec["files"].items():
        assert _sha(bundle / name) == _sha(cached / name) == sha == record.artifact["sha256"][name]
    assert spec["runtime"] == {"model": "model.onnx", "providers": ["CPUExecutionProvider"],
                               "graph_optimization_level": "ORT_ENABLE_ALL",
                               "execution_mode": "ORT_SEQUENTIAL", "intra_op_num_threads": 1,
                               "inter_op_num_threads": 1}
    assert spec["inputs"][0] | {"shape": None} == {"name": "X", "dtype": "float32",
                                                   "shape": None, "batch_axis": 0}
    assert isinstance(spec["inputs"][0]["shape"][0], str)  # the batch dim, named
    requirements = (bundle / "requirements.txt").read_text().split()
    assert requirements == [f"onnxruntime=={record.packages['onnxruntime']}",
                            f"numpy=={np.__version__}"]
    assert "int8-static" in (bundle / "MODEL_CARD.md").read_text()
    _matches_trial(bundle, _predict(bundle, bundle / SAMPLE_FILE, tmp_path / "out.npz"))
    # tuner.load opens it through the bundle's own predict.py; rows in any number.
    model = tuner.load(bundle)
    rows = workloads.get("digits").eval_inputs["X"][:13]
    np.testing.assert_allclose(model.run({"X": rows})[0],
                               np.concatenate([model.run({"X": r[None]})[0] for r in rows]),
                               rtol=1e-5, atol=1e-6)
    model.close()
    # --verify: same outputs and quality, latency beside the ORT default.
    capsys.readouterr()
    # (latency judged loosely: a µs-scale model on a shared VM; speed lives in bench/)
    loose = ["--rounds", "1", "--latency-tolerance", "10"]
    assert main(["export", "--verify", str(bundle), *loose]) == 0, capsys.readouterr()
    assert "speed-up vs ORT default" in capsys.readouterr().out
    # --data: quality scored on the user's own rows against the fp32 reference on them.
    digits = workloads.get("digits")
    np.savez(tmp_path / "mine.npz", X=digits.eval_inputs["X"][:40],
             labels=digits.eval_labels[:40])
    assert main(["export", "--verify", str(bundle), *loose, "--data",
                 str(tmp_path / "mine.npz")]) == 0
    assert "on mine.npz" in capsys.readouterr().out
    spec["metrics"]["quality"] -= 0.01  # a bundle whose claim it does not meet
    (bundle / INFERENCE_FILE).write_text(json.dumps(spec))
    assert main(["export", "--verify", str(bundle), *loose]) == 4
    assert "quality" in capsys.readouterr().err


BACKENDS = [{"backend": "ort", "precision": "int8-static"},
            {"backend": "ort", "precision": "fp32", "ort_graph_optimization": "basic"},
            {"backend": "openvino", "precision": "fp32"},
            {"backend": "tvm", "precision": "fp32", "tvm_tuning_trials": 0}]


def test_user_model_bundles_run_in_a_fresh_virtualenv(protocol, tmp_path):
    """A built-in workload's winner, and a user model with its state batched on axis 1 and a
    constant int64 scalar exported from every backend: each bundle runs in a virtualenv
    holding nothing but the bundles' requirements.txt (no Podium); the bundle holds the
    constant, and a static-shape artifact takes any number of rows in chunks, as the trial
    scored them."""
    model, data = conformance_models.recurrent(tmp_path)
    workload = workloads.from_files(model, data)
    rows = {k: v[:7] for k, v in workload.eval_inputs.items()}  # odd, more than the batch
    np.savez(tmp_path / "rows.npz",
             **{k: v for k, v in workload.layout.feed(rows).items() if k != "sr"})
    # A built-in workload's winner among them.
    digits = run_trial(workloads.get("digits"), Configuration(variant="mlp-64"),
                       protocol=protocol)
    bundles = [export_bundle(digits, tmp_path / "digits")]
    for values in BACKENDS:
        result = run_trial(workload, Configuration.parse({"batch": 2, **values}),
                           protocol=protocol)
        assert result.ok, result.error
        bundle = export_bundle(result, tmp_path / "-".join(map(str, values.values())))
        spec = json.loads((bundle / INFERENCE_FILE).read_text())
        assert {i["name"]: i["batch_axis"] for i in spec["inputs"]} == {
            "x": 0, "state": 1, "sr": None}
        assert spec["constants"] == "constants.npz"
        assert spec["files"] == result.artifact["sha256"]
        assert (bundle / "requirements.txt").read_text().startswith(
            "\n".join(f"{k}=={v}" for k, v in spec["engine"].items()))
        bundles.append(bundle)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    requirements = [a for b in bundles for a in ("-r", str(b / "requirements.txt"))]
    done = subprocess.run([str(venv / "bin/pip"), "install", "-q", *requirements],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    python = str(venv / "bin/python")
    assert subprocess.run([python, "-c", "import tuner"], capture_output=True,
                          cwd=tmp_path).returncode != 0
    for bundle in bundles:
        _matches_trial(bundle, _predict(bundle, bundle / SAMPLE_FILE, tmp_path / "s.npz",
                                        python=python, block=False))
        if bundle.name == "digits":
            continue
        got = _predict(bundle, tmp_path / "rows.npz", tmp_path / "r.npz", python=python,
                       block=False)
        assert got["stateN"].shape == (2, 7, 128), bundle.name
        model = tuner.load(bundle)
        expected = run_in_batches(workload.layout.wrap(model.session.run), rows, 2, pad=True)
        model.close()
        np.testing.assert_allclose(got["y"], expected[0], rtol=1e-5, atol=1e-6)


def test_refusals_write_nothing(int8_trial, tmp_path, capsys):
    record, path = int8_trial
    out = tmp_path / "out"
    # An unknown trial id in an optimize result.
    result = {"trials": [record.model_dump(mode="json")], "best": None, "pareto": [],
              "baseline": None}
    result_path = tmp_path / "result.json"
    result_path.write_text(json.dumps(result))
    assert main(["export", str(result_path), str(out), "--pick", "0123456789"]) == 2
    assert main(["export", str(result_path), str(out)]) == 2  # no best to pick
    assert main(["export", str(result_path), str(out), "--pick", "pareto:1"]) == 2
    assert "no best" in capsys.readouterr().err
    assert not out.exists()
    picked, _ = pick_record(result, record.trial_id[:8])
    assert picked.trial_id == record.trial_id
    # A trial that did not complete: refused, or exported with --force and labelled.
    failed = record.model_copy(update={"state": TrialState.INFEASIBLE, "error": "below the floor"})
    failed_path = tmp_path / "failed.json"
    failed.to_json(failed_path)
    assert main(["export", str(failed_path), str(out)]) == 2
    assert not out.exists()
    assert main(["export", str(failed_path), str(out), "--force"]) == 0
    assert json.loads((out / INFERENCE_FILE).read_text())["export"]["forced"] is True
    assert "Exported with --force" in (out / "MODEL_CARD.md").read_text()
    # A non-empty OUT_DIR: refused and left as it was.
    before = {p.name: _sha(p) for p in out.iterdir()}
    assert main(["export", str(path), str(out)]) == 2
    assert {p.name: _sha(p) for p in out.iterdir()} == before
    assert "not empty" in capsys.readouterr().err
    # Nothing of the refused exports was left beside OUT_DIR.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failed.json", "out", "result.json"]


def test_an_artifact_gone_from_the_cache_is_rebuilt_byte_identical(int8_trial, tmp_path,
                                                                   capsys):
    record, path = int8_trial
    cached = cache_dir("artifacts") / record.artifact["key"]
    shutil.rmtree(cached)
    assert main(["export", str(path), str(tmp_path / "rebuilt")]) == 0
    spec = json.loads((tmp_path / "rebuilt" / INFERENCE_FILE).read_text())
    assert spec["export"]["rebuilt"] is True
    assert spec["files"] == record.artifact["sha256"]
    # A record whose files no rebuild reproduces: said so, nothing written.
    shutil.rmtree(cached)
    tampered = record.model_copy(update={"artifact": record.artifact | {
        "sha256": {"model.onnx": "0" * 64}}})
    tampered.to_json(tmp_path / "tampered.json")
    assert main(["export", str(tmp_path / "tampered.json"), str(tmp_path / "no")]) == 2
    assert "byte-identical" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()
    # A cached file altered after the build: refused, never shipped.
    (cached / "model.onnx").write_bytes(b"not the model")
    assert main(["export", str(path), str(tmp_path / "altered")]) == 2
    assert "altered" in capsys.readouterr().err
    shutil.rmtree(cached)


def test_export_from_an_unknown_study_or_bad_file_is_one_line(tmp_path, capsys):
    assert main(["export", "--study", "nope", str(tmp_path / "x")]) == 2
    (tmp_path / "junk.json").write_text("[1, 2]")
    assert main(["export", str(tmp_path / "junk.json"), str(tmp_path / "x")]) == 2
    assert main(["export", "--verify", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("podium: error:") == 3 and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_trial_result_json_round_trips_the_output_sample(int8_trial):
    _, path = int8_trial
    again = TrialResult.model_validate_json(path.read_text())
    sample = again.measurement["output_sample"]
    assert sample[0]["shape"] == [1, 10] and len(sample[0]["head"]) == 10

"""Hostile model and data files, through ``workloads.from_files`` and through the CLI.

Each is refused with one line naming the problem, before anything is cached, and none
makes Podium read a file the input merely names. (Corrupt, truncated, pickled and
mismatched files are covered in test_workloads.py and test_cli.py.)
"""

from __future__ import annotations

import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import workloads
from tests import onnx_models
from tuner.cli import main
from tuner.errors import WorkloadError

ROOT = Path(__file__).resolve().parents[1]


def _snapshot(home: Path) -> set[Path]:
    return {p.relative_to(home) for p in home.rglob("*")}


def _outside(tmp_path: Path) -> Path:
    """A file beside (not inside) the model's folder that a hostile model points at."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(24, dtype=np.float32).tobytes())
    return secret


def _external(where: str, location: str):
    def make(tmp_path: Path) -> tuple[Path, Path]:
        _outside(tmp_path)
        folder = tmp_path / "model"
        folder.mkdir()
        (folder / "inside.bin").write_bytes(np.ones(24, np.float32).tobytes())
        (folder / "link.bin").symlink_to(tmp_path / "secret.bin")
        return (onnx_models.external_data_model(folder / "m.onnx", location, where=where),
                onnx_models.data(tmp_path / "d.npz", classes=None))
    return make


def _oversized(tmp_path: Path) -> tuple[Path, Path]:
    return (onnx_models.classifier(tmp_path / "m.onnx"), onnx_models.data(tmp_path / "d.npz"))


def _oversized_data(tmp_path: Path) -> tuple[Path, Path]:
    model = onnx_models.classifier(tmp_path / "m.onnx")
    data = tmp_path / "d.npz"
    np.savez_compressed(data, x=np.zeros((20_000, 8), np.float32))  # 640 kB, packs to ~1 kB
    return model, data


def _member(name: str):
    def make(tmp_path: Path) -> tuple[Path, Path]:
        model = onnx_models.classifier(tmp_path / "m.onnx")
        data = onnx_models.data(tmp_path / "d.npz")
        with warnings.catch_warnings(), zipfile.ZipFile(data, "a") as archive:
            warnings.simplefilter("ignore")  # zipfile warns about a duplicate name
            archive.writestr(name, b"\x93NUMPY")
        return model, data
    return make


def _absurd_allocation(tmp_path: Path) -> tuple[Path, Path]:
    model = onnx_models.huge_allocation_model(tmp_path / "m.onnx")
    np.savez(tmp_path / "d.npz", x=np.ones((10, 4), np.float32))
    return model, tmp_path / "d.npz"


def _absurd_input_dim(tmp_path: Path) -> tuple[Path, Path]:
    model = onnx_models.relu_model(tmp_path / "m.onnx", ["N", 2**40])
    np.savez(tmp_path / "d.npz", x=np.ones((10, 8), np.float32))
    return model, tmp_path / "d.npz"


def _data_off_the_declared_shape(tmp_path: Path) -> tuple[Path, Path]:
    model = onnx_models.relu_model(tmp_path / "m.onnx", [-1, 5])
    np.savez(tmp_path / "d.npz", x=np.ones((10, 6), np.float32))
    return model, tmp_path / "d.npz"


def _model_is_a_folder(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "m.onnx").mkdir()
    return tmp_path / "m.onnx", onnx_models.data(tmp_path / "d.npz")


def _data_is_a_fifo(tmp_path: Path) -> tuple[Path, Path]:
    import os

    os.mkfifo(tmp_path / "d.npz")  # reading it would block forever
    return onnx_models.classifier(tmp_path / "m.onnx"), tmp_path / "d.npz"


# name → (make files, message fragment, environment)
CASES = {
    "external data ../ escape": (_external("initializer", "../secret.bin"),
                                 "outside the model's folder", {}),
    "external data absolute path": (_external("initializer", "/etc/passwd"),
                                    "outside the model's folder", {}),
    "external data deep escape": (_external("initializer", "../../../../../../etc/passwd"),
                                  "outside the model's folder", {}),
    "external data symlink out": (_external("initializer", "link.bin"),
                                  "outside the model's folder", {}),
    "external data in a Constant": (_external("attribute", "../secret.bin"),
                                    "outside the model's folder", {}),
    "external data in a subgraph": (_external("subgraph", "/etc/passwd"),
                                    "outside the model's folder", {}),
    "external data inside its folder": (_external("attribute", "inside.bin"),
                                        "external data file", {}),
    "oversized model": (_oversized, "over the limit of 500 (PODIUM_MAX_MODEL_BYTES)",
                        {"PODIUM_MAX_MODEL_BYTES": "500"}),
    "bad model size cap": (_oversized, "PODIUM_MAX_MODEL_BYTES='lots' is not",
                           {"PODIUM_MAX_MODEL_BYTES": "lots"}),
    "oversized data": (_oversized, "over the limit of 1024 (PODIUM_MAX_DATA_BYTES)",
                       {"PODIUM_MAX_DATA_BYTES": "1024"}),
    "zip bomb data": (_oversized_data, "unpacks to 640128 bytes",
                      {"PODIUM_MAX_DATA_BYTES": "100000"}),
    "npz member ../ path": (_member("../../evil.npy"), "members with paths", {}),
    "npz member absolute path": (_member("/tmp/evil.npy"), "members with paths", {}),
    "npz duplicate member": (_member("x.npy"), "duplicate members", {}),
    "absurd allocation": (_absurd_allocation, "fails on the evaluation data", {}),
    "absurd input dim": (_absurd_input_dim, "expects ['?', 1099511627776]", {}),
    "data off the declared shape": (_data_off_the_declared_shape,
                                    "has shape [10, 6], m.onnx expects ['?', 5]", {}),
    "model is a folder": (_model_is_a_folder, "is not a regular file", {}),
    "data is a fifo": (_data_is_a_fifo, "is not a regular file", {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_files_are_refused_and_nothing_is_cached(case, tmp_path, monkeypatch,
                                                         podium_home):
    make, fragment, env = CASES[case]
    model, data = make(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    before = _snapshot(podium_home)
    with pytest.raises(WorkloadError) as error:
        workloads.from_files(model, data)
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)
    assert _snapshot(podium_home) == before


@pytest.mark.parametrize("case", ["external data ../ escape", "external data symlink out",
                                  "external data in a subgraph"])
def test_external_data_is_refused_before_any_file_it_names_is_opened(case, tmp_path):
    """strace the whole check: the file the model points at is never opened."""
    import shutil

    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    model, data = CASES[case][0](tmp_path)
    script = ("import sys, workloads\nfrom tuner.errors import WorkloadError\n"
              "try:\n    workloads.from_files(sys.argv[1], sys.argv[2])\n"
              "except WorkloadError as e:\n    print(e)\n")
    log = tmp_path / "strace.log"
    done = subprocess.run(["strace", "-f", "-e", "trace=open,openat,openat2",
                           "-o", str(log), sys.executable, "-c", script, str(model), str(data)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert "outside the model's folder" in done.stdout, done.stdout + done.stderr
    opened = [line for line in log.read_text().splitlines()
              if "secret.bin" in line or "/etc/passwd" in line]
    assert opened == []


CLI_CASES = ["external data ../ escape", "external data in a Constant", "oversized model",
             "zip bomb data", "npz member ../ path", "absurd allocation",
             "data off the declared shape"]


@pytest.mark.parametrize("command", ["trial", "optimize"])
@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_refuses_hostile_files_in_one_line(case, command, tmp_path, monkeypatch, capfd,
                                               podium_home):
    make, fragment, env = CASES[case]
    model, data = make(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    files = ["--model", str(model), "--data", str(data)]
    args = (["trial", "run", *files] if command == "trial"
            else ["optimize", *files, "--trials", "1", "--storage",
                  f"sqlite:///{tmp_path / 's.db'}"])
    before = _snapshot(podium_home)
    assert main(args) == 2
    captured = capfd.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("podium: error: ") and fragment in lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert _snapshot(podium_home) == before
    assert not (tmp_path / "s.db").exists()


def test_np_load_never_unpickles():
    """Every np.load in the code base passes allow_pickle=False."""
    calls = []
    for folder in ("tuner", "workloads", "leaderboard"):
        for path in (ROOT / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if "np.load(" in line or "numpy.load(" in line:
                    calls.append((f"{path.relative_to(ROOT)}:{number}", line))
    assert calls
    unsafe = [where for where, line in calls if "allow_pickle=False" not in line]
    assert unsafe == []


def test_a_map_output_is_refused_before_any_trial(tmp_path):
    """scikit-learn's ZipMap output (a sequence of maps) cannot be scored: refused up front."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    clf = LogisticRegression().fit(x, (x[:, 0] > 0).astype(np.int64))
    model = tmp_path / "zipmap.onnx"
    model.write_bytes(to_onnx(clf, x[:1], target_opset=17).SerializeToString())
    np.savez(tmp_path / "d.npz", X=x)
    with pytest.raises(WorkloadError, match="is a sequence, not a tensor"):
        workloads.from_files(model, tmp_path / "d.npz")

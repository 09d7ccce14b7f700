"""A user workload from files: ``--model FILE.onnx --data FILE.npz``.

The npz holds one array per model input (keys = input names, batch on axis 0) and an
optional ``labels`` array. Everything is validated before anything is cached: the ONNX
file (size cap, no external data, checker + onnxruntime), the npz (size cap on the file
and on its uncompressed members, plain member names, no pickles), names, dtypes, shapes,
consistent batch sizes, and reference outputs that compute and are finite. The data is
split deterministically: the first rows calibrate (static int8), the rest evaluate, so
quality is never measured on calibration data.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np

from tuner.errors import WorkloadError, one_line
from workloads.base import Metric, Variant, Workload
from workloads.onnx_files import InputSpec, check_model_file, check_size
from workloads.quality import choose_metric
from workloads.reference import compute_reference
from workloads.registry import staging_dir, store

LABELS = "labels"
MAX_CALIB = 128
MIN_ROWS = 2
MAX_DATA_BYTES_ENV = "PODIUM_MAX_DATA_BYTES"
MAX_DATA_BYTES = 4 * 1024**3  # on disk and uncompressed, each


def from_files(model: Path | str, data: Path | str, *, name: str | None = None) -> Workload:
    """Validate ``model`` + ``data`` and return a cached :class:`Workload`.

    Raises:
        WorkloadError: any mismatch between the model and the data, with one line naming it.
    """
    model, data = Path(model), Path(data)
    specs = check_model_file(model)
    arrays = _load_npz(data)
    rows = _check_arrays(specs, arrays, model.name, data.name)
    fixed_batch = specs[0].shape[0] if specs[0].shape else None
    n_calib = min(MAX_CALIB, max(1, rows // 5))
    calib = {s.name: arrays[s.name][:n_calib] for s in specs}
    evaluate = {s.name: arrays[s.name][n_calib:] for s in specs}
    labels = arrays.get(LABELS)
    try:
        outputs = compute_reference(model, evaluate, batch=fixed_batch or 64)
    except WorkloadError:
        raise
    except Exception as exc:  # onnxruntime's own errors, e.g. an impossible allocation
        raise WorkloadError(f"{model.name} fails on the evaluation data in {data.name}: "
                            f"{one_line(exc)[:300]}") from None
    metric = choose_metric(outputs[0], labels is not None)
    if metric is Metric.ACCURACY and outputs[0].shape[:1] != labels[n_calib:].shape[:1]:
        raise WorkloadError(f"labels in {data.name} do not match the first output's rows")
    staging = staging_dir()
    try:
        shutil.copyfile(model, staging / "model.onnx")
        stored = {f"eval__{k}": v for k, v in evaluate.items()}
        stored |= {f"calib__{k}": v for k, v in calib.items()}
        if labels is not None:
            stored["labels"] = labels[n_calib:]
        np.savez(staging / "data.npz", **stored)
        variant = Variant("model", "model.onnx", f"user model {model.name}")
        return store(name=name or f"user:{model.stem}", description=f"{model.name} + {data.name}",
                     metric=metric, reference="model", variants=[variant], staging=staging,
                     arrays=stored, output_index=0, source="files", outputs=outputs)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise WorkloadError(f"data file {path} does not exist")
    if not path.is_file():
        raise WorkloadError(f"data file {path} is not a regular file")
    if not zipfile.is_zipfile(path):
        raise WorkloadError(f"{path.name} is not a readable npz file (not a zip archive of "
                            "arrays; save with numpy.savez)")
    _check_members(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise WorkloadError(f"{path.name} contains pickled objects, which are refused "
                                "(save plain numeric arrays)") from None
        raise WorkloadError(f"{path.name} is not a readable npz file: {one_line(exc)}") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise WorkloadError(f"{path.name} is not a readable npz file: {one_line(exc)}") from None


def _check_members(path: Path) -> None:
    """Size caps (zip bombs included) and plain, unique member names, before reading."""
    limit = check_size(path, "data", MAX_DATA_BYTES_ENV, MAX_DATA_BYTES)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise WorkloadError(f"{path.name} is not a readable npz file: {one_line(exc)}") from None
    unpacked = sum(m.file_size for m in members)
    if unpacked > limit:
        raise WorkloadError(f"data file {path.name} unpacks to {unpacked} bytes, over the "
                            f"limit of {limit} ({MAX_DATA_BYTES_ENV})")
    names = [m.filename for m in members]
    odd = [n for n in names if "/" in n or "\\" in n or n.startswith(".") or ":" in n]
    if odd:
        raise WorkloadError(f"{path.name} has members with paths {odd[:3]}; an npz holds "
                            "plain array names only")
    if len(set(names)) != len(names):
        raise WorkloadError(f"{path.name} has duplicate members; save with numpy.savez")


def _check_arrays(specs: list[InputSpec], arrays: dict[str, np.ndarray], model: str,
                  data: str) -> int:
    """Check names, dtypes, shapes and batch sizes; return the number of rows."""
    expected = {s.name for s in specs}
    missing = sorted(expected - arrays.keys())
    unknown = sorted(arrays.keys() - expected - {LABELS})
    if missing or unknown:
        raise WorkloadError(f"{data} does not match the inputs of {model}: missing "
                            f"{missing or 'none'}, unknown {unknown or 'none'} "
                            f"(model inputs: {sorted(expected)}, optional 'labels')")
    rows = {name: len(array) if array.ndim else 0 for name, array in arrays.items()}
    if len(set(rows.values())) != 1:
        raise WorkloadError(f"arrays in {data} have different batch sizes: {rows}")
    for spec in specs:
        array = arrays[spec.name]
        if array.dtype != spec.dtype:
            raise WorkloadError(f"input {spec.name!r}: {data} has dtype {array.dtype}, "
                                f"{model} expects {spec.dtype}")
        if array.ndim != len(spec.shape) or any(
                want is not None and got != want
                for got, want in zip(array.shape[1:], spec.shape[1:], strict=True)):
            shown = ["?" if d is None else d for d in spec.shape]
            raise WorkloadError(f"input {spec.name!r}: {data} has shape {list(array.shape)}, "
                                f"{model} expects {shown}")
    if LABELS in arrays and not np.issubdtype(arrays[LABELS].dtype, np.integer):
        raise WorkloadError(f"'labels' in {data} must be integers, got {arrays[LABELS].dtype}")
    count = next(iter(rows.values()))
    if count < MIN_ROWS:
        raise WorkloadError(f"{data} needs at least {MIN_ROWS} rows, has {count}")
    return count

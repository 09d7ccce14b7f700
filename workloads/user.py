"""A user workload from files: ``--model FILE.onnx --data FILE.npz``.

The npz holds one array per model input (keys = input names) and an optional ``labels``
array. Where each input carries the batch — axis 0, another axis (a recurrent state), or
none (a constant such as a sample rate) — is inferred from the model's declared dims and
the data, or said by the user (:mod:`workloads.layout`). Everything is validated before
anything is cached: the ONNX file (size cap, no external data, checker + onnxruntime), the
npz (size cap on the file and on its uncompressed members, plain member names, no
pickles), names, dtypes, shapes, consistent row counts, and reference outputs that compute
and are finite. The data is split deterministically: the first rows calibrate (static
int8), the rest evaluate, so quality is never measured on calibration data.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from workloads.base import CONSTANTS, Metric, Variant, Workload
from workloads.batch_axes import fixed_batch, infer_inputs, infer_outputs
from workloads.errors import WorkloadError, one_line
from workloads.layout import Hint, check_hints
from workloads.onnx_files import InputSpec, check_model_file, check_size
from workloads.quality import choose_metric
from workloads.reference import REFERENCE_BATCH, compute_reference, reference_session
from workloads.registry import staging_dir, store

LABELS = "labels"
MAX_CALIB = 128
MIN_ROWS = 2
MAX_DATA_BYTES_ENV = "PODIUM_MAX_DATA_BYTES"
MAX_DATA_BYTES = 4 * 1024**3  # on disk and uncompressed, each


def from_files(model: Path | str, data: Path | str, *, name: str | None = None,
               inputs: Mapping[str, Hint] | None = None,
               outputs: Mapping[str, Hint] | None = None) -> Workload:
    """Validate ``model`` + ``data`` and return a cached :class:`Workload`.

    Args:
        model: the ONNX file.
        data: an npz with one array per model input (and optionally ``labels``).
        name: the workload's name (default ``user:<model stem>``).
        inputs: what the data cannot say, per input: its batch axis (``{"state": 1}``) or
            ``"constant"`` (given whole to every call, e.g. a sample rate). Everything else
            is inferred (:func:`workloads.layout.infer_inputs`).
        outputs: per output, its batch axis or ``"unscored"`` (left out of quality, e.g. a
            recurrent model's next state).

    Raises:
        WorkloadError: any mismatch between the model and the data, with one line naming it.
    """
    model, data = Path(model), Path(data)
    # Checked in a scratch folder: a refused model leaves nothing under PODIUM_HOME.
    with tempfile.TemporaryDirectory(prefix="podium-user-") as scratch:
        return _from_files(model, data, Path(scratch), name=name, input_hints=inputs or {},
                           output_hints=outputs or {})


def _from_files(model: Path, data: Path, scratch: Path, *, name: str | None,
                input_hints: Mapping[str, Hint], output_hints: Mapping[str, Hint]) -> Workload:
    stored = scratch / "model.onnx"
    specs, declared_in, declared_out = check_model_file(model, stored)
    arrays = _load_npz(data)
    _check_names_and_dtypes(specs, arrays, model.name, data.name)
    input_hints = check_hints(input_hints, [s.name for s in specs], kind="inputs")
    output_hints = check_hints(output_hints, [o.name for o in declared_out], kind="outputs")
    layout, rows = infer_inputs(declared_in, arrays, input_hints, model=model.name,
                                data=data.name)
    labels = arrays.get(LABELS)
    if labels is not None and len(labels) != rows:
        raise WorkloadError(f"{data.name}: 'labels' has {len(labels)} rows and the inputs "
                            f"{rows} (different batch sizes)")
    if rows < MIN_ROWS:
        raise WorkloadError(f"{data.name} needs at least {MIN_ROWS} rows, has {rows}")
    batched = {k: np.moveaxis(arrays[k], axis, 0) if axis else arrays[k]
               for k, axis in layout.inputs.items() if axis is not None}
    batch = fixed_batch(declared_in, layout)
    try:
        session = reference_session(stored)
        layout = infer_outputs(layout, lambda feed: session.run(None, feed), batched,
                               [o.name for o in declared_out], output_hints, batch=batch,
                               model=model.name)
        n_calib = min(MAX_CALIB, max(1, rows // 5))
        calib = {k: v[:n_calib] for k, v in batched.items()}
        evaluate = {k: v[n_calib:] for k, v in batched.items()}
        outputs = compute_reference(stored, evaluate, batch=batch or REFERENCE_BATCH,
                                    layout=layout, pad=batch is not None)
    except WorkloadError:
        raise
    except Exception as exc:  # onnxruntime's own errors, e.g. an impossible allocation
        if layout.guessed:
            raise WorkloadError(f"{model.name} fails on the data in {data.name} "
                                f"{layout.guess_hint()}") from None
        raise WorkloadError(f"{model.name} fails on the evaluation data in {data.name}: "
                            f"{one_line(exc)[:300]}") from None
    scored = layout.scored(len(outputs))
    metric = choose_metric(outputs[scored[0]], labels is not None)
    if metric is Metric.ACCURACY and outputs[scored[0]].shape[:1] != labels[n_calib:].shape[:1]:
        raise WorkloadError(f"labels in {data.name} do not match the first scored output's "
                            "rows")
    stored_arrays = {f"eval__{k}": v for k, v in evaluate.items()}
    stored_arrays |= {f"calib__{k}": v for k, v in calib.items()}
    stored_arrays |= {f"{CONSTANTS}{k}": v for k, v in layout.constants.items()}
    if labels is not None:
        stored_arrays["labels"] = labels[n_calib:]
    staging = staging_dir()
    try:
        shutil.move(stored, staging / "model.onnx")
        np.savez(staging / "data.npz", **stored_arrays)
        variant = Variant("model", "model.onnx", f"user model {model.name}")
        return store(name=name or f"user:{model.stem}",
                     description=f"{model.name} + {data.name}", metric=metric,
                     reference="model", variants=[variant], staging=staging,
                     arrays=stored_arrays, output_index=scored[0], source="files",
                     outputs=outputs, layout=layout)
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


def _check_names_and_dtypes(specs: list[InputSpec], arrays: dict[str, np.ndarray],
                            model: str, data: str) -> None:
    """Every model input has an array of its dtype, nothing else but ``labels`` is there."""
    expected = {s.name for s in specs}
    missing = sorted(expected - arrays.keys())
    unknown = sorted(arrays.keys() - expected - {LABELS})
    if missing or unknown:
        raise WorkloadError(f"{data} does not match the inputs of {model}: missing "
                            f"{missing or 'none'}, unknown {unknown or 'none'} "
                            f"(model inputs: {sorted(expected)}, optional 'labels')")
    for spec in specs:
        array = arrays[spec.name]
        if array.dtype != spec.dtype:
            raise WorkloadError(f"input {spec.name!r}: {data} has dtype {array.dtype}, "
                                f"{model} expects {spec.dtype}")
    if LABELS in arrays:
        labels = arrays[LABELS]
        if not np.issubdtype(labels.dtype, np.integer):
            raise WorkloadError(f"'labels' in {data} must be integers, got {labels.dtype}")
        if labels.ndim == 0:
            raise WorkloadError(f"'labels' in {data} must hold one integer per row")

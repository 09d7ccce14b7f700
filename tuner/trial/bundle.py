"""``podium export``: a trial's artifact as a folder that runs without Podium.

A bundle holds the exact files that were timed (byte-identical to the cached artifact,
checked against the sha256 the build recorded), and beside them:

* ``inference.json`` — backend, engine versions, precision, the runtime block (every session
  or compile option, threads included: :meth:`Backend.runtime`), input and output names,
  dtypes, shapes with dynamic dims named and batch axes, the configuration and its digest,
  the files' checksums;
* ``podium_runtime.py`` — the backend's standalone runtime
  (:mod:`tuner.backends.standalone`), the very code the measuring worker opened it with;
* ``predict.py`` — a copy of :mod:`tuner.trial.bundle_predict`: ``load()``/``predict()``
  and ``python predict.py INPUTS.npz OUT.npz``;
* ``requirements.txt`` (the runtime pinned at the measured versions, and numpy),
  ``MODEL_CARD.md`` (the measured figures and how to check them), ``sample_inputs.npz``
  (one call's real rows) and ``constants.npz`` where the model has constant inputs.

A bundle is written into a temporary folder beside ``out_dir`` and renamed at the end, so
a refused or failed export leaves nothing. :func:`load_bundle` is ``tuner.load``: it opens
a bundle through its own ``predict.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from importlib import import_module, metadata
from pathlib import Path
from typing import Any

import numpy as np

from tuner.backends import backend_class
from tuner.backends.base import ARTIFACT_MANIFEST, Artifact
from tuner.errors import InputError
from tuner.trial import bundle_predict
from tuner.trial.config import Configuration
from tuner.trial.results import TrialResult, TrialState
from workloads.base import Workload
from workloads.onnx_files import file_sha256
from workloads.paths import cache_dir

BUNDLE_FORMAT = "podium-bundle/1"
INFERENCE_FILE = bundle_predict.INFERENCE_FILE
RUNTIME_FILE = bundle_predict.RUNTIME_FILE
PREDICT_FILE = "predict.py"
REQUIREMENTS_FILE = "requirements.txt"
CARD_FILE = "MODEL_CARD.md"
SAMPLE_FILE = "sample_inputs.npz"
CONSTANTS_FILE = "constants.npz"
# Values of each output kept in a trial record (the first call's), to check an export by.
SAMPLE_VALUES = 256


class ExportError(InputError):
    """The trial cannot be exported as asked (CLI exit 2); nothing was written."""


def output_sample(outputs: list[Any]) -> list[dict[str, Any]]:
    """What a trial records of one call's outputs: shape, dtype and the first values."""
    sample = []
    for out in outputs:
        array = np.asarray(out)
        head = array.reshape(-1)[:SAMPLE_VALUES]
        values = head.astype(np.float64).tolist() if array.dtype.kind in "fc" else head.tolist()
        sample.append({"shape": list(array.shape), "dtype": str(array.dtype), "head": values})
    return sample


def sample_mismatch(recorded: list[dict[str, Any]], measured: list[dict[str, Any]], *,
                    rtol: float = 1e-4, atol: float = 1e-5) -> str | None:
    """Why the :func:`output_sample` ``measured`` differs from ``recorded``; None if not."""
    if len(recorded) != len(measured):
        return f"{len(measured)} outputs, the trial recorded {len(recorded)}"
    for index, (want, got) in enumerate(zip(recorded, measured, strict=True)):
        if got["shape"] != want["shape"]:
            return f"output {index} has shape {got['shape']}, the trial's had {want['shape']}"
        then, now = (np.asarray(x["head"], dtype=np.float64) for x in (want, got))
        if then.shape != now.shape:
            return f"output {index} has {now.size} sampled values, the trial's {then.size}"
        if not np.allclose(now, then, rtol=rtol, atol=atol, equal_nan=True):
            worst = float(np.max(np.abs(now - then)))
            return f"output {index} differs from the trial's by up to {worst:.3g}"
    return None


def find_workload(name: str, sha256: str) -> Workload:
    """The workload ``name`` with content ``sha256`` from this machine's store (a user
    model's folder, or the built-in built on demand), refusing one whose content differs."""
    import workloads
    from workloads.registry import open_root

    root = cache_dir("workloads") / sha256[:16]
    if root.is_dir():
        return open_root(root)
    if name in workloads.names():
        workload = workloads.get(name)
        if workload.sha256 == sha256:
            return workload
    raise ExportError(f"workload {name!r} (content {sha256[:12]}) is not on this machine: run "
                      "the search here, or import the model with the same --model/--data first")


def cached_artifact(record: TrialResult, workload: Workload, *,
                    rebuild: bool = True) -> tuple[Artifact, bool]:
    """The trial's artifact from the cache, or rebuilt from its configuration; ``(artifact,
    rebuilt)``. A rebuild must reproduce the recorded files byte for byte."""
    from tuner.trial.build import build_artifact
    from tuner.trial.run import validate

    key = record.artifact.get("key")
    folder = cache_dir("artifacts") / key if key else None
    if folder is not None and (folder / ARTIFACT_MANIFEST).exists():
        return Artifact.load(folder), False
    if not rebuild:
        raise ExportError(f"trial {record.trial_id[:12]}'s artifact is not in the cache")
    config, profile = validate(workload, Configuration.model_validate(record.config))
    artifact, _ = build_artifact(workload, config, profile)
    recorded = record.artifact.get("sha256") or {}
    differs = [name for name, sha in recorded.items() if artifact.checksums.get(name) != sha]
    if differs or not recorded:
        why = (f"{', '.join(differs)} differ(s) from the files that were timed" if differs
               else "the trial recorded no checksums to compare a rebuild with")
        raise ExportError(f"trial {record.trial_id[:12]}'s artifact was not in the cache and "
                          f"its rebuild cannot be shown byte-identical: {why}")
    return artifact, True


def recorded_speedup(record: TrialResult, confirmation: dict[str, Any] | None,
                     baseline: TrialResult | None) -> dict[str, Any] | None:
    """The trial's p90 speed-up over the ORT default as its search recorded it: from the
    side-by-side confirmation where it is the confirmed best, else against the search's
    baseline measurement; None where neither has a figure."""
    speedup = (confirmation or {}).get("speedup_p90")
    if isinstance(speedup, int | float):
        return {"speedup_p90": speedup, "source": "confirmation"}
    mine = record.metric("latency_p90_ms")
    base = baseline.metric("latency_p90_ms") if baseline is not None else None
    if mine and base:
        return {"speedup_p90": base / mine, "source": "search (baseline trial)"}
    return None


def export_bundle(record: TrialResult, out_dir: Path, *, force: bool = False,
                  source: str = "", confirmation: dict[str, Any] | None = None,
                  baseline: TrialResult | None = None) -> Path:
    """Write ``record``'s artifact as a bundle in ``out_dir``; see the module docstring.
    ``confirmation`` is the search's side-by-side re-measurement of it, where it has one,
    ``baseline`` its search's ORT default trial: the recorded speed-up comes from them.

    Raises:
        ExportError: a trial that did not complete (unless ``force``: then it is exported
            and labelled), a backend with no standalone runtime, a non-empty ``out_dir``
            (unless ``force``), an artifact neither cached nor rebuildable byte-identically.
    """
    out_dir = Path(out_dir)
    if record.state is not TrialState.COMPLETE and not force:
        raise ExportError(f"trial {record.trial_id[:12]} is {record.state} "
                          f"({record.error or 'no measurement'}); --force exports it anyway, "
                          "labelled as such")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not force:
        raise ExportError(f"{out_dir} exists and is not empty; --force replaces it")
    backend = backend_class(record.config["backend"])
    if backend.runtime_module is None:
        raise ExportError(f"backend {backend.name!r} has no standalone runtime to export with")
    workload = find_workload(record.workload.name, record.workload.sha256)
    config = Configuration.model_validate(record.config).normalized()
    artifact, rebuilt = cached_artifact(record, workload)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.export-", dir=out_dir.parent))
    try:
        checksums = _copy_files(artifact, record, staging)
        runtime_module = import_module(backend.runtime_module)
        shutil.copyfile(runtime_module.__file__, staging / RUNTIME_FILE)
        shutil.copyfile(bundle_predict.__file__, staging / PREDICT_FILE)
        spec = _inference_spec(record, config, workload, artifact, checksums)
        spec["confirmation"] = confirmation
        spec["recorded_speedup"] = recorded_speedup(record, confirmation, baseline)
        spec["export"] = {"source": source, "exported_at": datetime.now(UTC).isoformat(),
                          "rebuilt": rebuilt, "forced": record.state is not TrialState.COMPLETE}
        if workload.constants:
            np.savez(staging / CONSTANTS_FILE, **workload.constants)
            spec["constants"] = CONSTANTS_FILE
        np.savez(staging / SAMPLE_FILE, **workload.example_feed(config.batch))
        (staging / INFERENCE_FILE).write_text(json.dumps(spec, indent=2) + "\n")
        (staging / REQUIREMENTS_FILE).write_text(
            requirements(record, runtime_module.REQUIRES))
        (staging / CARD_FILE).write_text(model_card(record, spec, out_dir))
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp's 0700 is for the staging only
        if out_dir.exists():
            shutil.rmtree(out_dir) if out_dir.is_dir() else out_dir.unlink()
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _copy_files(artifact: Artifact, record: TrialResult, staging: Path) -> dict[str, str]:
    """Copy the artifact's files, each checked against the build's and the trial's sha256."""
    recorded = record.artifact.get("sha256") or {}
    checksums = {}
    for name in artifact.files:
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(artifact.path / name, target)
        digest = file_sha256(target)
        for what, want in (("the build", artifact.checksums.get(name)),
                           ("the trial", recorded.get(name))):
            if want is not None and want != digest:
                raise ExportError(f"the cached {name} (sha256 {digest[:12]}) is not the file "
                                  f"{what} recorded ({want[:12]}): the cache was altered")
        checksums[name] = digest
    return checksums


def _inference_spec(record: TrialResult, config: Configuration, workload: Workload,
                    artifact: Artifact, checksums: dict[str, str]) -> dict[str, Any]:
    backend = backend_class(config.backend)
    inputs, outputs = _io(workload, config)
    return {
        "format": BUNDLE_FORMAT,
        "backend": backend.name,
        "export_format": backend.export_format,
        "engine": {name: _version(record, name)
                   for name in import_module(backend.runtime_module).REQUIRES},
        "precision": str(config.precision),
        "batch": config.batch,
        "threads": config.threads,
        "static_shapes": "batch" in backend.build_keys,
        "runtime": backend.runtime(artifact, config, threads=config.threads),
        "inputs": inputs,
        "outputs": outputs,
        "constants": None,
        "files": checksums,
        "sample": {"inputs": SAMPLE_FILE, "outputs": record.measurement.get("output_sample")},
        "config": record.config,
        "config_digest": record.config_digest,
        "artifact_key": artifact.path.name,
        "trial_id": record.trial_id,
        "state": str(record.state),
        "workload": record.workload.model_dump(mode="json", exclude={"fingerprint"}),
        "hardware": {"profile": record.hardware.profile, "node": record.hardware.node,
                     "fingerprint": record.hardware.fingerprint},
        "metrics": record.metrics.model_dump(mode="json"),
        "podium_version": record.podium_version,
    }


def _io(workload: Workload, config: Configuration) -> tuple[list[dict[str, Any]],
                                                             list[dict[str, Any]]]:
    """The model's inputs and outputs as ``inference.json`` lists them: name, dtype, shape
    (dynamic dims named) and batch axis (None: a constant input, or an output that does not
    grow with the batch)."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    from workloads.onnx_files import session_io

    path = workload.model_path(config.variant)
    specs, declared_in, declared_out = session_io(path)
    types = {o.name: o.type.tensor_type.elem_type
             for o in onnx.load(str(path), load_external_data=False).graph.output}
    in_axes, out_axes = workload.layout.inputs, workload.layout.outputs
    inputs = [{"name": spec.name, "dtype": str(spec.dtype), "shape": _named(d.name, d.dims),
               "batch_axis": in_axes.get(spec.name, 0)}
              for spec, d in zip(specs, declared_in, strict=True)]
    outputs = [{"name": d.name, "dtype": str(np.dtype(tensor_dtype_to_np_dtype(types[d.name]))),
                "shape": _named(d.name, d.dims),
                "batch_axis": out_axes.get(d.name, 0) if out_axes else 0}
               for d in declared_out]
    return inputs, outputs


def _named(name: str, dims: tuple[int | str | None, ...]) -> list[int | str]:
    """Dims with every dynamic one named (an unnamed one as ``<tensor>_dim<axis>``)."""
    return [d if isinstance(d, int | str) else f"{name}_dim{axis}" for axis, d in enumerate(dims)]


def _version(record: TrialResult, package: str) -> str:
    if package in record.packages:
        return record.packages[package]
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


def requirements(record: TrialResult, packages: tuple[str, ...]) -> str:
    """The runtime pinned at the versions it was measured with, and numpy."""
    lines = [f"{name}=={_version(record, name)}" for name in packages]
    lines.append(f"numpy=={_version(record, 'numpy')}")
    return "\n".join(lines) + "\n"


def model_card(record: TrialResult, spec: dict[str, Any], out_dir: Path) -> str:
    """The measured figures, where and when, and how to check them again."""
    from tuner.trial.results import METRIC_UNITS

    metrics = record.metrics
    rows = []
    for name in ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "throughput_per_s",
                 "quality", "quality_ratio", "model_size_bytes", "peak_rss_bytes",
                 "cost_per_million_usd", "energy_mj_per_inference", "power_w"):
        value = getattr(metrics, name)
        if value is not None:
            source = {"cost_per_million_usd": f" ({metrics.price_source})",
                      "energy_mj_per_inference": f" ({metrics.power_source})",
                      "power_w": f" ({metrics.power_source})"}.get(name, "")
            shown = f"{value:.6g}" if isinstance(value, float) else str(value)
            rows.append(f"| {name} | {shown}{source} | {METRIC_UNITS[name]} |")
    confirmation = spec.get("confirmation")
    label = ("" if spec["state"] == TrialState.COMPLETE
             else f"\n> **Exported with --force: this trial is {spec['state']}** "
                  f"({record.error}). Its figures are not a measured result.\n")
    stability = metrics.stability or "not measured"
    cpu = record.hardware.fingerprint.get("cpu_model") or record.hardware.fingerprint.get("mcpu")
    config = ", ".join(f"{k}={v}" for k, v in sorted(record.config.items()))
    return f"""# {record.workload.name} ({record.workload.variant}) on {spec['backend']}
{label}
Exported by `podium export` from trial `{record.trial_id}`.

- Backend: {spec['backend']} ({', '.join(f'{k} {v}' for k, v in spec['engine'].items())}),
  precision {spec['precision']}, batch {spec['batch']}, {spec['threads']} thread(s)
- Configuration: {config} (digest `{record.config_digest}`)
- Measured on: {record.hardware.profile} ({cpu or 'CPU unknown'}), node {record.hardware.node},
  cores {record.hardware.cpus}, {record.started_at:%Y-%m-%d %H:%M} UTC
- Stability: {stability}{f' (CV {metrics.cv:.1%})' if metrics.cv is not None else ''}
- Quality is against the fp32 reference ({record.workload.metric})

| metric | value | unit |
|---|---|---|
{chr(10).join(rows)}
{_confirmation_line(confirmation)}
## Use it

    pip install -r requirements.txt
    python predict.py sample_inputs.npz outputs.npz

or `from predict import load; outputs = load().run(inputs)`. The model opens with exactly
the options in `inference.json` (`runtime`); other thread counts or session options change
its speed.

## Check it

    podium export --verify {out_dir}

re-scores quality against the fp32 reference and re-measures latency here, next to the
ONNX Runtime default; `podium reproduce` re-runs the trial itself.
"""


def _confirmation_line(confirmation: dict[str, Any] | None) -> str:
    speedup = (confirmation or {}).get("speedup_p90")
    if not isinstance(speedup, int | float):
        return ""
    return (f"\nConfirmed side by side with the ONNX Runtime default over "
            f"{confirmation.get('rounds')} interleaved rounds in fresh processes: "
            f"{speedup:.2f}× on p90.\n")


def load_bundle(folder: Path | str, *, threads: int | None = None) -> Any:
    """Open an exported bundle through its own ``predict.py`` (``tuner.load``): the object
    has ``run(inputs) -> list[np.ndarray]``, ``output_names`` and ``close()``."""
    folder = Path(folder)
    if not (folder / INFERENCE_FILE).is_file() or not (folder / PREDICT_FILE).is_file():
        raise InputError(f"{folder} is not a bundle written by podium export "
                         f"(no {INFERENCE_FILE} or {PREDICT_FILE})")
    module_spec = importlib.util.spec_from_file_location(f"podium_bundle_{abs(hash(folder))}",
                                                         folder / PREDICT_FILE)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.load(folder, threads=threads)

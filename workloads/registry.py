"""Built-in workloads by name, built at first use and cached by content hash.

Layout under ``PODIUM_HOME/workloads``::

    <sha256[:16]>/            one built workload: models, data.npz, reference.npz, manifest
    index/<name>-<key>.txt    recipe key → content folder (key = recipe version + packages)

A cached workload is re-verified against its manifest (file hashes) on every load, so a
corrupted cache is rebuilt instead of silently measured. Builds go to a temporary folder
and are renamed into place, so an interrupted build leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from workloads.base import Metric, Recipe, Variant, Workload, save_reference, write_data
from workloads.errors import WorkloadError
from workloads.layout import Layout
from workloads.onnx_files import file_sha256
from workloads.paths import cache_dir
from workloads.reference import compute_reference, reference_quality
from workloads.versions import package_versions

MANIFEST = "manifest.json"
DEFAULT_WORKLOAD = "digits"
_VERIFIED: dict[str, Workload] = {}  # index pointer → workload verified in this process

# name → module defining RECIPE; imported lazily so listing names costs nothing.
_RECIPES = {
    "digits": "workloads.digits",
    "convnet": "workloads.convnet",
    "encoder": "workloads.transformer",
}
# packages whose versions can change the bytes a recipe produces
_BUILD_PACKAGES = ("numpy", "onnx", "onnxruntime", "scikit-learn", "skl2onnx")


def names() -> list[str]:
    """Names of the built-in workloads."""
    return sorted(_RECIPES)


def recipe(name: str) -> Recipe:
    if name not in _RECIPES:
        raise WorkloadError(f"unknown workload {name!r} (built-in: {', '.join(names())}; "
                            "or pass --model F.onnx --data F.npz)")
    return importlib.import_module(_RECIPES[name]).RECIPE


def get(name: str) -> Workload:
    """Return the built-in workload ``name``, building it on first use.

    A cached workload's files are hashed once per process (a Ray worker runs many trials
    of the same workload; re-hashing tens of MB per trial is wasted work).
    """
    spec = recipe(name)
    index = cache_dir("workloads") / "index"
    index.mkdir(exist_ok=True)
    pointer = index / f"{name}-{_recipe_key(spec)}.txt"
    known = _VERIFIED.get(str(pointer))
    if known is not None and (known.root / MANIFEST).exists():
        return known
    if pointer.exists():
        root = cache_dir("workloads") / pointer.read_text().strip()
        cached = _verified(root)
        if cached is not None:
            _VERIFIED[str(pointer)] = cached
            return cached
    workload = _build(spec)
    pointer.write_text(workload.root.name)
    _VERIFIED[str(pointer)] = workload
    return workload


def content_hash(name: str, metric: Metric, reference: str, variants: list[Variant],
                 root: Path, arrays: dict[str, np.ndarray], layout: Layout | None = None) -> str:
    """sha256 over the workload's identity, model bytes, data arrays and, where it is not
    batch-first or scores several outputs, its layout (the same arrays read along another
    axis are other data)."""
    header: list[Any] = [name, str(metric), reference]
    if layout is not None and (not layout.is_batch_first
                               or len(layout.scored(len(layout.outputs))) > 1):
        header.append(layout.as_dict())
    digest = hashlib.sha256(json.dumps(header).encode())
    for variant in sorted(variants, key=lambda v: v.name):
        digest.update(f"{variant.name}:{file_sha256(root / variant.filename)}".encode())
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def store(*, name: str, description: str, metric: Metric, reference: str,
          variants: list[Variant], staging: Path, arrays: dict[str, np.ndarray],
          output_index: int, source: str,
          outputs: list[np.ndarray] | None = None, layout: Layout | None = None) -> Workload:
    """Finish a staged workload folder: reference outputs, hash, manifest, atomic rename.

    ``outputs`` are the reference outputs when the caller already computed them; a
    ``layout`` (user models) says where inputs and outputs carry the batch.
    """
    if outputs is None:
        eval_inputs = {k.removeprefix("eval__"): v for k, v in arrays.items()
                       if k.startswith("eval__")}
        outputs = compute_reference(staging / _variant(variants, reference).filename,
                                    eval_inputs)
    if not 0 <= output_index < len(outputs):
        raise WorkloadError(f"output index {output_index} out of range ({len(outputs)} outputs)")
    save_reference(staging, outputs)
    sha = content_hash(name, metric, reference, variants, staging, arrays, layout)
    manifest = {
        "name": name, "description": description, "metric": str(metric),
        "reference": reference, "output_index": output_index, "source": source,
        "sha256": sha,
        "reference_quality": reference_quality(metric, outputs[output_index],
                                               arrays.get("labels")),
        "variants": [vars(v) for v in variants],
        "files": {p.name: file_sha256(p) for p in sorted(staging.iterdir())},
    }
    if layout is not None:
        manifest["layout"] = layout.as_dict()
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
    target = cache_dir("workloads") / sha[:16]
    if target.exists():
        existing = _verified(target)
        if existing is not None:
            shutil.rmtree(staging)
            return existing
        shutil.rmtree(target)
    staging.rename(target)
    return open_root(target)


def staging_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix=".staging-", dir=cache_dir("workloads")))


def _build(spec: Recipe) -> Workload:
    staging = staging_dir()
    try:
        out = spec.build(staging)
        write_data(staging / "data.npz", out)
        with np.load(staging / "data.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        return store(name=spec.name, description=spec.description, metric=spec.metric,
                     reference=out.reference, variants=out.variants, staging=staging,
                     arrays=arrays, output_index=spec.output_index,
                     source="builtin")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _recipe_key(spec: Recipe) -> str:
    versions = package_versions()
    material = [spec.name, spec.version, [versions.get(p) for p in _BUILD_PACKAGES]]
    return hashlib.sha256(json.dumps(material).encode()).hexdigest()[:12]


def _variant(variants: list[Variant], name: str) -> Variant:
    for variant in variants:
        if variant.name == name:
            return variant
    raise WorkloadError(f"reference variant {name!r} is not among the variants")


def _verified(root: Path) -> Workload | None:
    """Load ``root`` if its files match the manifest, else None (caller rebuilds)."""
    try:
        manifest = json.loads((root / MANIFEST).read_text())
        for filename, sha in manifest["files"].items():
            if file_sha256(root / filename) != sha:
                return None
    except (OSError, ValueError, KeyError):
        return None
    return Workload(
        name=manifest["name"], description=manifest["description"], root=root,
        variants={v["name"]: Variant(**v) for v in manifest["variants"]},
        reference=manifest["reference"], metric=Metric(manifest["metric"]),
        sha256=manifest["sha256"], output_index=manifest["output_index"],
        reference_quality=manifest["reference_quality"], source=manifest["source"],
        layout_spec=manifest.get("layout"),
    )


def open_root(root: Path) -> Workload:
    """Open a stored workload folder, verifying its files; WorkloadError if corrupt."""
    workload = _verified(root)
    if workload is None:
        raise WorkloadError(f"workload folder {root} is missing or fails verification")
    return workload

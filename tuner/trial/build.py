"""Build artifacts through a worker process, cached by content hash.

The cache key is a hash of (variant model sha256, the configuration fields that change
the artifact, the target for TVM, and the versions of the packages that build it), so a
repeated build is a cache hit and an upgrade never reuses a stale artifact. A build goes
to a staging folder that is renamed into ``PODIUM_HOME/artifacts/<key>`` only when it
succeeded: a failed or killed build leaves nothing in the cache.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tuner.backends.base import ARTIFACT_MANIFEST, Artifact
from tuner.hardware import HardwareProfile, tvm_target_for
from tuner.trial.config import Backend, Configuration
from tuner.trial.subprocess_runner import owned_prefix, remove_orphans, run_worker
from workloads.base import Workload
from workloads.onnx_files import file_sha256
from workloads.paths import cache_dir
from workloads.versions import package_versions

STAGING_PREFIX = ".staging-"
_TVM_KEY_PACKAGES = ("apache-tvm-ffi", "xgboost")
_KEY_PACKAGES = ("onnx", "onnxruntime", "apache-tvm", "onnxconverter-common", "onnxscript")


def hardware_spec(profile: HardwareProfile, config: Configuration) -> dict[str, Any]:
    """The profile as the backend sees it, with the TVM target resolved for ``config``."""
    spec = profile.as_dict()
    if config.backend is Backend.TVM:
        spec["tvm_target"] = tvm_target_for(profile, config.tvm_features.value)
    return spec


def artifact_key(workload: Workload, config: Configuration, profile: HardwareProfile) -> str:
    config = config.normalized()
    versions = package_versions()
    material: dict[str, Any] = {
        "model": file_sha256(workload.model_path(config.variant)),
        "config": config.build_key(),
        "packages": {p: versions.get(p) for p in _KEY_PACKAGES},
    }
    if config.backend is Backend.TVM:
        material["target"] = hardware_spec(profile, config)["tvm_target"]
        # Which MetaSchedule search can run (tuner/backends/tvm/tuning.py) depends on these.
        material["tvm_packages"] = {p: versions.get(p) for p in _TVM_KEY_PACKAGES}
        # Compiled for static shapes, which a dynamic dim takes from the workload's data.
        material["input_shapes"] = {name: list(array.shape) for name, array
                                    in sorted(workload.example_feed(config.batch).items())}
    text = json.dumps(material, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def build_artifact(workload: Workload, config: Configuration, profile: HardwareProfile, *,
                   timeout_s: float | None = None,
                   threads: int | None = None) -> tuple[Artifact, bool]:
    """Return ``(artifact, cache_hit)``; raises TrialFailed when the build fails."""
    config = config.normalized()
    target = cache_dir("artifacts") / artifact_key(workload, config, profile)
    if (target / ARTIFACT_MANIFEST).exists():
        return Artifact.load(target), True
    # A build killed with its process (SIGKILL, a dead Ray worker) leaves its staging folder;
    # the next build sweeps those whose owner is gone (a cache hit has nothing to sweep for).
    remove_orphans(cache_dir("artifacts"), STAGING_PREFIX)
    staging = Path(tempfile.mkdtemp(prefix=owned_prefix(STAGING_PREFIX),
                                    dir=cache_dir("artifacts")))
    try:
        spec = {"task": "build", "config": config.as_dict(), "out_dir": str(staging),
                "workload_root": str(workload.root), "hardware": hardware_spec(profile, config)}
        run_worker(spec, timeout_s=timeout_s, threads=threads)
        if target.exists():  # another process built the same artifact meanwhile
            shutil.rmtree(staging)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Artifact.load(target), False

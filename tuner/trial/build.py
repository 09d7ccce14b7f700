"""Build artifacts through a worker process, cached by content hash.

The cache key is a hash of (variant model sha256, the configuration keys that change the
artifact, what else the backend says it depends on — TVM's target and input shapes — and
the versions of the packages that build it: the transforms' and the backend's), so a
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

from tuner.backends.base import ARTIFACT_MANIFEST, Artifact, Precision
from tuner.backends.registry import backend_class
from tuner.hardware import HardwareProfile
from tuner.trial.config import Configuration
from tuner.trial.subprocess_runner import owned_prefix, remove_orphans, run_worker
from workloads.base import Workload
from workloads.onnx_files import file_sha256
from workloads.paths import cache_dir
from workloads.versions import package_versions

STAGING_PREFIX = ".staging-"
# What tuner.transforms converts the graph with, before any backend builds.
_TRANSFORM_PACKAGES = ("onnx", "onnxruntime", "onnxconverter-common", "onnxscript")


def hardware_spec(profile: HardwareProfile, config: Configuration) -> dict[str, Any]:
    """The profile as the backend sees it, with what it resolves for ``config`` (TVM's
    target); raises HardwareError where the profile cannot serve ``config``."""
    return profile.as_dict() | backend_class(config.backend).hardware_spec(profile, config)


def artifact_key(workload: Workload, config: Configuration, profile: HardwareProfile) -> str:
    config = config.normalized()
    backend = backend_class(config.backend)
    versions = package_versions()
    material: dict[str, Any] = {
        "model": file_sha256(workload.model_path(config.variant)),
        "config": config.build_key(),
        "packages": {p: versions.get(p) for p in _TRANSFORM_PACKAGES} | backend.versions(),
        "backend": backend.cache_key(config, profile, workload),
    }
    if Precision(config.precision).is_int8:
        # Calibrated and ranked on this workload's rows: another workload with the same model
        # file (other data, another layout) quantizes to another artifact.
        material["data"] = workload.sha256
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

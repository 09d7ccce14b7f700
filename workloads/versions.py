"""Versions of the packages that decide what a trial builds and measures.

Recorded in every TrialResult and mixed into artifact and workload cache keys, so an
upgrade of onnxruntime or TVM never reuses an artifact built by the old one. Defined here,
in the bottom layer, because the workload cache keys on them too.
"""

from __future__ import annotations

import platform
from functools import cache
from importlib import metadata

TRACKED = ("podium", "onnx", "onnxruntime", "apache-tvm", "apache-tvm-ffi", "xgboost", "numpy",
           "onnxconverter-common", "onnxscript", "scikit-learn", "skl2onnx", "optuna", "ray")


@cache
def package_versions() -> dict[str, str]:
    """Installed versions of :data:`TRACKED` (``"missing"`` where absent), plus Python."""
    versions = {"python": platform.python_version()}
    for name in TRACKED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def podium_version() -> str:
    return package_versions()["podium"]

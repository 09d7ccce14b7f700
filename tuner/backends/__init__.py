"""Backends stage: ONNX file + Configuration → a runnable artifact, and its session.

Owns the plugin contract (``base``: :class:`Backend`, :class:`Session`, :class:`Artifact`)
and one module per engine (``onnxruntime``; ``tvm/``, a folder for its import, tuning and
tuning database), found by name through :func:`get_backend`, which imports them lazily so
``import tuner`` stays free of TVM.

May import: the records (:mod:`tuner.trial.config`), :mod:`tuner.hardware`,
:mod:`tuner.errors` and ``workloads``. Never a stage above (trial, knowledge, search, cli).
"""

from __future__ import annotations

import importlib

from tuner.backends.base import Artifact, Backend, Session
from tuner.errors import ConfigError

_BACKENDS = {"ort": ("tuner.backends.onnxruntime", "OrtBackend"),
             "tvm": ("tuner.backends.tvm", "TvmBackend")}

__all__ = ["Artifact", "Backend", "Session", "get_backend"]


def get_backend(name: str) -> Backend:
    """Return a backend instance by name; unknown names list the valid ones."""
    if name not in _BACKENDS:
        raise ConfigError(f"unknown backend {name!r} (valid: {', '.join(_BACKENDS)})")
    module, cls = _BACKENDS[name]
    return getattr(importlib.import_module(module), cls)()

"""Backends stage: ONNX file + Configuration → a runnable artifact, and its session.

Owns the plugin contract (``base``: :class:`Backend` with its declarations — precisions,
:class:`Option`\\ s, versions, export format — :class:`Session`, :class:`Artifact`), the
``registry`` (built-ins in one table, third-party backends from the ``podium.backends``
entry-point group; modules imported lazily so ``import tuner`` stays free of TVM), the
conformance suite every backend passes (``checks``), one module per engine
(``onnxruntime``; ``tvm/``, a folder for its import, tuning and tuning database;
``openvino/``) and ``standalone/``: the code that opens each engine's artifacts with numpy
and the engine alone, which measuring workers run and exported bundles ship.

``base`` and ``registry`` form the contract layer, below the records: they import only
:mod:`tuner.errors`, so :mod:`tuner.trial.config` validates against them. The engines may
import the records (:mod:`tuner.trial.config`), :mod:`tuner.transforms`,
:mod:`tuner.hardware`, :mod:`tuner.errors` and ``workloads``. Never a stage above (trial,
knowledge, search, cli).
"""

from __future__ import annotations

from tuner.backends.base import Artifact, Backend, Condition, Option, Precision, Session
from tuner.backends.registry import backend_class, backend_names, get_backend, registrations

__all__ = ["Artifact", "Backend", "Condition", "Option", "Precision", "Session",
           "backend_class", "backend_names", "get_backend", "registrations"]

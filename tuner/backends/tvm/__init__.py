"""The Apache TVM backend: ahead-of-time compilation, optionally MetaSchedule-tuned.

One backend in its own folder because it has four parts: ``backend`` (the
:class:`~tuner.backends.base.Backend` the registry names, and its session), ``frontend``
(ONNX → Relax, shared by a build and its tuning child), ``tuning`` (MetaSchedule, run in a
child process) and ``database`` (the persistent tuning records under PODIUM_HOME, which the
knowledge store exports and imports). Importing this package does not import TVM.

Its keys (``tvm_opt_level``, ``tvm_features``, ``tvm_tuning_trials``) are declared on
:class:`TvmBackend`, with the hooks that resolve the profile's TVM target.

May import: :mod:`tuner.backends.base`, :mod:`tuner.trial.config` (the records),
:mod:`tuner.hardware`, :mod:`tuner.errors` and ``workloads``.
"""

from __future__ import annotations

from tuner.backends.tvm.backend import IO_FILE, LIBRARY_FILE, TvmBackend, TvmFeatures

__all__ = ["IO_FILE", "LIBRARY_FILE", "TvmBackend", "TvmFeatures"]

"""Podium's engine: search, measure and rank ONNX serving configurations.

One subpackage per stage; dependencies point down, and ``tests/test_architecture.py``
holds every import to this order:

* :mod:`tuner.cli` — the ``podium`` command (Typer), one module per command group;
* :mod:`tuner.search` — ``optimize()``: space, Optuna study, loop, Ray executor, result;
* :mod:`tuner.knowledge` and :mod:`tuner.trial` — what past searches learned (store,
  fingerprints, transfers, sampler choice, pull), and one trial: validate, build, measure,
  record (its ``config``, ``results`` and ``constraints`` modules are the records every
  stage and the leaderboard read, so they sit below the stages);
* :mod:`tuner.backends` and :mod:`tuner.transforms` — ONNX → artifact, ONNX → ONNX;
* :mod:`tuner.hardware` — profiles, the local host, power and cost;
* :mod:`tuner.errors` (the error tree) and :mod:`tuner.client` (the leaderboard's HTTP
  client, for the CLI and for pulling knowledge);
* ``workloads`` below all of them.

``import tuner`` is light: TVM, Ray and Optuna load only when a search or a trial needs
them. The public entry points are :func:`optimize` and :func:`load` (an exported bundle,
opened through its own ``predict.py``: ``tuner.load(OUT_DIR).run(inputs)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner.search.optimize import optimize
    from tuner.search.result import OptimizationResult
    from tuner.trial.bundle import load_bundle as load

__all__ = ["OptimizationResult", "load", "optimize"]


def __getattr__(name: str) -> Any:
    if name == "optimize":
        from tuner.search.optimize import optimize

        return optimize
    if name == "OptimizationResult":
        from tuner.search.result import OptimizationResult

        return OptimizationResult
    if name == "load":
        from tuner.trial.bundle import load_bundle

        return load_bundle
    raise AttributeError(f"module 'tuner' has no attribute {name!r}")

"""Podium's engine: trials, search and measurement.

``import tuner`` is light: TVM, Ray and Optuna load only when a search or a trial needs
them. The public entry point is :func:`optimize`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner.api import OptimizationResult, optimize

__all__ = ["OptimizationResult", "optimize"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tuner import api

        return getattr(api, name)
    raise AttributeError(f"module 'tuner' has no attribute {name!r}")

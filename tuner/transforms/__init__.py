"""ONNX → ONNX transforms applied before a backend builds: precision changes."""

from __future__ import annotations

from tuner.transforms.precision import apply_precision

__all__ = ["apply_precision"]

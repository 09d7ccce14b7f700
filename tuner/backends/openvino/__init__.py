"""The OpenVINO backend: ONNX → OpenVINO IR compiled for the CPU with every property pinned
(``backend``), int8 through NNCF (``quantize``), and its declarations — precisions per ISA
and configuration keys — in ``options``, which import neither OpenVINO nor NNCF.
"""

from __future__ import annotations

from tuner.backends.openvino.backend import OpenVinoBackend

__all__ = ["OpenVinoBackend"]

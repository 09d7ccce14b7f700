"""Open an ONNX model in ONNX Runtime with exactly the session options of ``runtime``.

``runtime``: ``model`` (file name in the folder), ``graph_optimization_level`` and
``execution_mode`` (``onnxruntime`` enum names), ``intra_op_num_threads``,
``inter_op_num_threads``, ``providers``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# The distributions a bundle needs besides numpy (pinned in its requirements.txt).
REQUIRES = ("onnxruntime",)


class OrtSession:
    def __init__(self, session: Any) -> None:
        self._session = session
        self.input_names = [i.name for i in session.get_inputs()]
        # Named once here: ``run(None, ...)`` lists them again on every call.
        self._outputs = [o.name for o in session.get_outputs()]
        self._run = session.run
        self.details: dict[str, Any] = {}

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._run(self._outputs, inputs)

    def close(self) -> None:
        self._session = None


def session_options(runtime: dict[str, Any]) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                               runtime["graph_optimization_level"])
    options.execution_mode = getattr(ort.ExecutionMode, runtime["execution_mode"])
    options.intra_op_num_threads = int(runtime["intra_op_num_threads"])
    options.inter_op_num_threads = int(runtime["inter_op_num_threads"])
    options.log_severity_level = 3
    return options


def open_session(folder: Path, runtime: dict[str, Any]) -> OrtSession:
    import onnxruntime as ort

    session = ort.InferenceSession(str(Path(folder) / runtime["model"]),
                                   session_options(runtime), providers=runtime["providers"])
    return OrtSession(session)

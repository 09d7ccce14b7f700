"""ONNX Runtime backend: the artifact is the (transformed) ONNX file itself.

Graph optimization level, execution mode and thread counts are session options, chosen
at load time, so one artifact serves every thread count (they are not in the cache key).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.backends.base import Artifact, Backend, Session
from tuner.trial.config import ExecutionMode, GraphOptimization

if TYPE_CHECKING:
    import numpy as np

    from tuner.trial.config import Configuration

MODEL_FILE = "model.onnx"

_LEVELS = {
    GraphOptimization.DISABLE: "ORT_DISABLE_ALL",
    GraphOptimization.BASIC: "ORT_ENABLE_BASIC",
    GraphOptimization.EXTENDED: "ORT_ENABLE_EXTENDED",
    GraphOptimization.ALL: "ORT_ENABLE_ALL",
}


class OrtSession(Session):
    def __init__(self, session: Any) -> None:
        self._session = session
        self.input_names = [i.name for i in session.get_inputs()]
        # Named once here: ``run(None, ...)`` lists them again on every call.
        self._outputs = [o.name for o in session.get_outputs()]
        self._run = session.run

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._run(self._outputs, inputs)

    def close(self) -> None:
        self._session = None


class OrtBackend(Backend):
    name = "ort"

    def build(self, model_path: Path, config: Configuration, out_dir: Path, *,
              calibration: dict[str, np.ndarray] | None, hardware: dict[str, Any],
              example: dict[str, np.ndarray] | None = None) -> Artifact:
        start = time.perf_counter()
        shutil.copyfile(model_path, out_dir / MODEL_FILE)
        return Artifact(path=out_dir, backend=self.name, files=[MODEL_FILE],
                        model_size_bytes=(out_dir / MODEL_FILE).stat().st_size,
                        build_s=time.perf_counter() - start,
                        details={"providers": ["CPUExecutionProvider"]})

    def load(self, artifact: Artifact, config: Configuration, *, threads: int) -> Session:
        return OrtSession(create_session(artifact.path / MODEL_FILE, config, threads=threads))


def create_session(model_path: Path, config: Configuration, *, threads: int) -> Any:
    """An InferenceSession with exactly the options ``config`` names."""
    import onnxruntime as ort

    config = config.normalized()
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                               _LEVELS[config.ort_graph_optimization])
    parallel = config.ort_execution_mode is ExecutionMode.PARALLEL
    options.execution_mode = (ort.ExecutionMode.ORT_PARALLEL if parallel
                              else ort.ExecutionMode.ORT_SEQUENTIAL)
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads if parallel else 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])

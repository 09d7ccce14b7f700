"""ONNX Runtime backend: the artifact is the (transformed) ONNX file itself.

Graph optimization level, execution mode and thread counts are session options, chosen
at load time, so one artifact serves every thread count (they are not in the cache key).
Precisions other than fp32 arrive already converted by :mod:`tuner.transforms` (fp16 via
onnxconverter-common, int8 via ONNX Runtime's quantizer), so the int8 keys, which only this
backend runs, are declared here beside the session options.
"""

from __future__ import annotations

import shutil
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.backends.base import Artifact, Backend, Condition, Option, Precision
from tuner.backends.standalone import onnxruntime as standalone
from tuner.transforms.cleanup import GraphCleanup
from tuner.transforms.precision import Calibration, Int8OpTypes, QuantFormat

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

    from tuner.trial.config import Configuration

MODEL_FILE = "model.onnx"


class GraphOptimization(StrEnum):
    DISABLE = "disable"
    BASIC = "basic"
    EXTENDED = "extended"
    ALL = "all"


class ExecutionMode(StrEnum):
    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"


_LEVELS = {
    GraphOptimization.DISABLE: "ORT_DISABLE_ALL",
    GraphOptimization.BASIC: "ORT_ENABLE_BASIC",
    GraphOptimization.EXTENDED: "ORT_ENABLE_EXTENDED",
    GraphOptimization.ALL: "ORT_ENABLE_ALL",
}
_INT8 = Condition("precision", one_of=(Precision.INT8_DYNAMIC, Precision.INT8_STATIC),
                  label="int8 precisions")
_STATIC = Condition("precision", one_of=(Precision.INT8_STATIC,))
# Calibration changes only scale constants, unless it also decides which nodes stay fp32.
_SAME_GRAPH = Condition("int8_keep_fp32", one_of=(0,), label="no node kept fp32")
_BOOL = (False, True)

# In the order the search space decides them. The defaults reproduce Podium's int8 before
# mixed precision: every op type, nothing kept fp32, QDQ with asymmetric uint8 activations,
# full-range weights, ≤ 128 calibration rows.
OPTIONS = (
    Option("ort_graph_optimization", short="graph", default=GraphOptimization.ALL,
           choices=tuple(GraphOptimization),
           searched=(GraphOptimization.BASIC, GraphOptimization.ALL), build=False,
           help="session graph optimization level"),
    Option("ort_execution_mode", short="exec",
           default=ExecutionMode.SEQUENTIAL, choices=tuple(ExecutionMode),
           needs={ExecutionMode.PARALLEL: Condition("threads", at_least=2)}, build=False,
           help="run independent nodes in parallel (inter-op threads = threads)"),
    Option("graph_cleanup", short="cleanup", default=GraphCleanup.NONE, choices=tuple(GraphCleanup),
           help="ONNX clean-up before precision transforms (onnxscript: fold constants, "
                "rewrite); searched only when the space asks"),
    Option("per_channel", short="per-ch",
           default=False, choices=_BOOL, searched=_BOOL, applies=_INT8,
           help="per-channel weight scales"),
    Option("int8_op_types", short="ops", default=Int8OpTypes.ALL, choices=tuple(Int8OpTypes),
           searched=(Int8OpTypes.ALL, Int8OpTypes.CONV_MATMUL), applies=_INT8,
           help="op types to quantize (conv-matmul: Conv/MatMul/Gemm; matmul: MatMul/Gemm)"),
    Option("int8_keep_fp32", short="keep",
           default=0, low=0, high=10_000, searched=(0, 2, 8), applies=_INT8,
           help="how many of the most quantization-sensitive nodes stay fp32"),
    Option("reduce_range", short="7-bit", default=False, choices=_BOOL, applies=_INT8,
           help="7-bit weights"),
    Option("quant_preprocess", short="prep", default=True, choices=_BOOL, applies=_INT8,
           help="onnxruntime's quant_pre_process before quantizing (with fallbacks)"),
    Option("calibration", short="calib", default=Calibration.MINMAX, choices=tuple(Calibration),
           searched=tuple(Calibration), applies=_STATIC, same_speed=_SAME_GRAPH,
           help="how tensor ranges are calibrated"),
    Option("quant_format", short="format",
           default=QuantFormat.QDQ, choices=tuple(QuantFormat), applies=_STATIC,
           help="QDQ pairs (ORT fuses them) or QLinear* operators"),
    Option("activation_symmetric", short="sym", default=False, choices=_BOOL, applies=_STATIC,
           help="symmetric activation ranges"),
    Option("calibration_rows", short="calib rows", default=128, low=1, high=4096, applies=_STATIC,
           same_speed=_SAME_GRAPH,
           help="calibration samples (capped by the calibration split)"),
)


class OrtBackend(Backend):
    name = "ort"
    export_format = "onnx"
    precisions = (Precision.FP32.value, Precision.FP16.value, Precision.INT8_DYNAMIC.value,
                  Precision.INT8_STATIC.value)
    options = OPTIONS
    packages = ("onnxruntime",)
    runtime_module = standalone.__name__

    def build(self, model_path: Path, config: Configuration, out_dir: Path, *,
              calibration: dict[str, np.ndarray] | None, hardware: dict[str, Any],
              example: dict[str, np.ndarray] | None = None,
              feed: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
              ) -> Artifact:
        self.require_precision(config, hardware)
        start = time.perf_counter()
        shutil.copyfile(model_path, out_dir / MODEL_FILE)
        return Artifact(path=out_dir, backend=self.name, files=[MODEL_FILE],
                        model_size_bytes=(out_dir / MODEL_FILE).stat().st_size,
                        build_s=time.perf_counter() - start,
                        details={"providers": ["CPUExecutionProvider"]})

    @classmethod
    def runtime(cls, artifact: Artifact, config: Configuration, *,
                threads: int) -> dict[str, Any]:
        """The session options ``config`` names, for
        :mod:`tuner.backends.standalone.onnxruntime`."""
        config = config.normalized()
        parallel = config.ort_execution_mode is ExecutionMode.PARALLEL
        return {"model": MODEL_FILE, "providers": ["CPUExecutionProvider"],
                "graph_optimization_level": _LEVELS[config.ort_graph_optimization],
                "execution_mode": "ORT_PARALLEL" if parallel else "ORT_SEQUENTIAL",
                "intra_op_num_threads": threads,
                "inter_op_num_threads": threads if parallel else 1}

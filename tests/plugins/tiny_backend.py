"""A backend plugged in from outside Podium, for tests/test_plugins.py.

It runs the ONNX file with onnxruntime, as the built-in does, but declares its own key:
``tiny_mode`` ("a" or "b", both searched; "b" turns graph optimizations off) and its own
precisions: fp32, and bf16 where the ISA has it — declared only, to test how precisions
follow the hardware; building bf16 fails, since this backend has no bf16 path. The test
copies this file next to a ``*.dist-info`` whose ``entry_points.txt`` registers it in the
``podium.backends`` group, so Podium finds it the way it finds any installed plugin, in its
own process and in every worker.
"""

from __future__ import annotations

import shutil
from typing import Any

from tuner.backends.base import Artifact, Backend, Option, Session
from tuner.errors import TrialFailed

MODEL_FILE = "tiny.onnx"


class TinySession(Session):
    def __init__(self, session: Any) -> None:
        self._session = session
        self.input_names = [i.name for i in session.get_inputs()]

    def run(self, inputs):
        return self._session.run(None, inputs)


class TinyBackend(Backend):
    name = "tiny"
    export_format = "onnx"
    precisions = ("fp32", "bf16")
    options = (Option("tiny_mode", default="a", choices=("a", "b"), searched=("a", "b"),
                      build=False, help="a: all graph optimizations, b: none"),)
    packages = ("onnxruntime",)
    precision_in_onnx = False

    @classmethod
    def precisions_for(cls, isa):
        flags = set(isa)
        return ("fp32", "bf16") if flags & {"avx512_bf16", "amx_bf16"} else ("fp32",)

    def build(self, model_path, config, out_dir, *, calibration, hardware, example=None,
              feed=None):
        self.require_precision(config, hardware)
        if config.precision != "fp32":
            raise TrialFailed(f"tiny has no {config.precision} path", stage="build")
        shutil.copyfile(model_path, out_dir / MODEL_FILE)
        return Artifact(path=out_dir, backend=self.name, files=[MODEL_FILE],
                        model_size_bytes=(out_dir / MODEL_FILE).stat().st_size, build_s=0.0)

    def load(self, artifact, config, *, threads):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                                            if config.tiny_mode == "a"
                                            else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
        return TinySession(ort.InferenceSession(str(artifact.path / MODEL_FILE), options,
                                                providers=["CPUExecutionProvider"]))

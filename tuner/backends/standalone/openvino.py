"""Compile an OpenVINO IR for the CPU with every property of ``runtime`` set explicitly.

``runtime``: ``model`` (the ``.xml`` file in the folder; its ``.bin`` beside it), ``device``
and ``properties``: ``INFERENCE_PRECISION_HINT`` (``f32``/``bf16``/``f16``),
``EXECUTION_MODE_HINT``, ``PERFORMANCE_HINT``, ``INFERENCE_NUM_THREADS``, ``NUM_STREAMS``,
``ENABLE_CPU_PINNING``, ``ENABLE_HYPER_THREADING``. Nothing is left to the plugin's
defaults: on a CPU with bf16 it would otherwise pick bf16 by itself.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

# The distributions a bundle needs besides numpy (pinned in its requirements.txt).
REQUIRES = ("openvino",)


def compile_properties(saved: Mapping[str, Any]) -> dict[str, Any]:
    """``saved`` as the typed values ``compile_model`` takes, keyed by OpenVINO's constants."""
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints
    import openvino.properties.streams as streams

    return {
        hints.inference_precision: getattr(ov.Type, saved["INFERENCE_PRECISION_HINT"]),
        hints.execution_mode: getattr(hints.ExecutionMode, saved["EXECUTION_MODE_HINT"]),
        hints.performance_mode: getattr(hints.PerformanceMode, saved["PERFORMANCE_HINT"]),
        props.inference_num_threads: int(saved["INFERENCE_NUM_THREADS"]),
        streams.num: saved["NUM_STREAMS"],
        hints.enable_cpu_pinning: saved["ENABLE_CPU_PINNING"],
        hints.enable_hyper_threading: saved["ENABLE_HYPER_THREADING"],
    }


def runtime_precisions(compiled: Any) -> dict[str, int]:
    """How many executed nodes run in each precision (``f32``, ``bf16``, ``u8``, ``i8``, …)."""
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if "runtimePrecision" in info and info["layerType"].astype(str) not in ("Input",
                                                                              "Output"):
            name = info["runtimePrecision"].astype(str)
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


class OpenVinoSession:
    """A compiled model and one infer request, created once.

    ``InferRequest.infer(dict)`` builds an ``OVDict`` of the results on every call, ~40 µs
    here; copying into the request's own input tensors and out of views of its output
    tensors keeps a call within a few µs of ONNX Runtime's. Those views stay valid only while
    shapes do not change, so a dynamic-shape model sets fresh tensors on every call.
    ``details`` records what the plugin actually compiled.
    """

    def __init__(self, compiled: Any, details: dict[str, Any]) -> None:
        import openvino as ov

        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self.input_names = [port.get_any_name() for port in compiled.inputs]
        self.details = details
        self._static = all(port.get_partial_shape().is_static
                           for port in [*compiled.inputs, *compiled.outputs])
        self._infer = self._request.infer
        self._copyto, self._tensor = np.copyto, ov.Tensor
        self._inputs = [(name, self._request.get_input_tensor(i).data)
                        for i, name in enumerate(self.input_names)]
        self._outputs = ([self._request.get_output_tensor(i).data
                          for i in range(len(compiled.outputs))] if self._static else [])

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        if not self._static:
            return self._run_dynamic(inputs)
        for name, view in self._inputs:
            value = inputs[name]
            if value.shape != view.shape:
                raise ValueError(f"input {name!r} has shape {value.shape}; this artifact "
                                 f"was compiled for {view.shape}")
            self._copyto(view, value, casting="same_kind")
        self._infer()
        return [view.copy() for view in self._outputs]

    def _run_dynamic(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        request = self._request
        for index, name in enumerate(self.input_names):
            array = np.ascontiguousarray(inputs[name])
            request.set_input_tensor(index, self._tensor(array, shared_memory=True))
        self._infer()
        return [request.get_output_tensor(i).data.copy()
                for i in range(len(self._compiled.outputs))]

    def close(self) -> None:
        self._inputs, self._outputs = [], []
        self._infer = self._request = self._compiled = None


def open_session(folder: Path, runtime: dict[str, Any]) -> OpenVinoSession:
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    core = ov.Core()
    start = time.perf_counter()
    compiled = core.compile_model(core.read_model(str(Path(folder) / runtime["model"])),
                                  runtime["device"], compile_properties(runtime["properties"]))
    compile_s = time.perf_counter() - start
    details = {"inference_precision": compiled.get_property(hints.inference_precision)
               .to_string(),
               "execution_mode": compiled.get_property(hints.execution_mode).name,
               "threads": compiled.get_property(props.inference_num_threads),
               "num_streams": int(compiled.get_property("NUM_STREAMS")),
               "cpu_pinning": compiled.get_property(hints.enable_cpu_pinning),
               "runtime_precisions": runtime_precisions(compiled),
               "compile_s": round(compile_s, 4)}
    return OpenVinoSession(compiled, details)

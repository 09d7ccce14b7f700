"""OpenVINO backend: the artifact is an OpenVINO IR plus the properties to compile it with.

``build`` reads the ONNX file (or, for ``int8-static``, the QDQ model NNCF makes of it, see
:mod:`tuner.backends.openvino.quantize`), fixes its input shapes to those of ``example`` when
``ov_static_shapes`` says so, and saves ``model.xml``/``model.bin`` with fp32 weights
(``ov.save_model`` would store fp16 by default) and ``compile.json``. ``load`` compiles that
IR for the CPU in the measuring process, with ``INFERENCE_NUM_THREADS`` = ``threads`` added
there, so one artifact serves every thread count.

Every compile property is set explicitly. OpenVINO's CPU plugin otherwise picks bf16 by
itself on a CPU that has it (``EXECUTION_MODE_HINT=PERFORMANCE`` is the default), and on a CPU
without it turns a bf16 or f16 request into f32 without a word (measured on AMD Zen 3). So
:func:`check_precision` refuses a precision the target's ISA lacks before anything is built,
and ``load`` refuses a compiled model whose precision is not the one asked for: a trial is
labelled with what ran.

The configuration keys this backend takes, and which precisions run on which ISA, are
declared in :mod:`tuner.backends.openvino.options`.
"""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.backends.base import Artifact, Backend, Session
from tuner.backends.openvino.options import (
    EXPORT_FORMAT,
    HINTS,
    OPTIONS,
    PRECISIONS,
    check_precision,
    option_value,
    precision_of,
    supported_precisions,
)
from tuner.backends.standalone import openvino as standalone
from tuner.errors import TrialFailed

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import numpy as np
    import onnx

    from tuner.transforms.sensitivity import Probe
    from tuner.trial.config import Configuration

MODEL_FILE, WEIGHTS_FILE, PROPERTIES_FILE = "model.xml", "model.bin", "compile.json"
DEVICE = "CPU"


def compile_properties(config: Any) -> dict[str, Any]:
    """The compile properties for ``config`` as JSON (threads are added at load)."""
    precision = precision_of(config)
    return {
        "INFERENCE_PRECISION_HINT": HINTS[precision],
        # ACCURACY stops the plugin from lowering an f32 request on a bf16-capable CPU.
        "EXECUTION_MODE_HINT": "ACCURACY" if HINTS[precision] == "f32" else "PERFORMANCE",
        "PERFORMANCE_HINT": str(option_value(config, "ov_performance_hint")).upper(),
        "NUM_STREAMS": int(option_value(config, "ov_num_streams")),
        "ENABLE_CPU_PINNING": bool(option_value(config, "ov_cpu_pinning")),
        "ENABLE_HYPER_THREADING": bool(option_value(config, "ov_hyper_threading")),
    }


class OpenVinoBackend(Backend):
    name = "openvino"
    export_format = EXPORT_FORMAT
    precisions = PRECISIONS
    options = OPTIONS
    packages = ("openvino", "nncf")
    precision_in_onnx = False  # the f32 graph comes in; precision is a hint or NNCF's
    build_keys = ("batch",)  # static shapes are the example's
    uses_held_out = True  # accuracy control and the bf16 ranking judge on held-out rows
    runtime_module = standalone.__name__

    @classmethod
    def cache_key(cls, config: Any, profile: Any, workload: Any) -> dict[str, Any]:
        """The static shapes the IR is reshaped to, which dynamic dims take from the data."""
        if not option_value(config, "ov_static_shapes"):
            return {}
        return {"input_shapes": {name: list(array.shape) for name, array
                                 in sorted(workload.example_feed(config.batch).items())}}

    @classmethod
    def precisions_for(cls, isa: Iterable[str]) -> tuple[str, ...]:
        native = supported_precisions(isa)
        return tuple(p for p in PRECISIONS if p in native)

    def build(self, model_path: Path, config: Configuration, out_dir: Path, *,
              calibration: dict[str, np.ndarray] | None, hardware: dict[str, Any],
              example: dict[str, np.ndarray] | None = None,
              feed: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
              held_out: Probe | None = None) -> Artifact:
        """Build the IR. ``feed`` (canonical rows → model inputs, the workload layout's
        ``feed``) serves int8; ``held_out`` (rows calibration never saw) is what accuracy
        control judges int8 on and what ranks layers for ``bf16_keep_top``."""
        import onnx
        import openvino as ov

        start = time.perf_counter()
        precision = precision_of(config)
        check_precision(precision, hardware.get("isa", ()))
        details: dict[str, Any] = {"versions": self.versions(), "precision": precision}
        if precision == "int8-static":
            from tuner.backends.openvino.quantize import held_out_validation, quantize

            if not calibration:
                raise TrialFailed("int8-static on openvino needs calibration rows",
                                  stage="build")
            validation = None
            if option_value(config, "nncf_accuracy_control") and held_out is not None:
                validation = held_out_validation(model_path, held_out, example=example,
                                                 feed=feed, batch=int(config.batch or 1))
            quantized, details["nncf"] = quantize(model_path, config, calibration=calibration,
                                                  example=example, feed=feed,
                                                  validation=validation)
            model = ov.Core().read_model(quantized.SerializeToString())
        else:
            model = ov.Core().read_model(str(model_path))
        static = bool(option_value(config, "ov_static_shapes")) and example is not None
        if static:
            _reshape(model, example)
        details["input_shapes"] = {port.get_any_name(): str(port.get_partial_shape())
                                   for port in model.inputs}
        ov.save_model(model, str(out_dir / MODEL_FILE), compress_to_fp16=False)
        keep = (_half_keep(model_path, config, held_out, details)
                if precision in ("bf16", "fp16") else [])
        if keep:
            details["kept_fp32"] = _keep_fp32(out_dir / MODEL_FILE, model,
                                              onnx.load(str(model_path), load_external_data=False),
                                              keep)
        properties = compile_properties(config)
        (out_dir / PROPERTIES_FILE).write_text(json.dumps(properties, indent=2))
        files = [MODEL_FILE, WEIGHTS_FILE, PROPERTIES_FILE]
        artifact = Artifact(
            path=out_dir, backend=self.name, files=files,
            model_size_bytes=sum((out_dir / f).stat().st_size for f in files[:2]),
            build_s=time.perf_counter() - start,
            details=details | {"export_format": EXPORT_FORMAT, "static_shapes": static,
                               "properties": properties})
        artifact.save()
        return artifact

    @classmethod
    def runtime(cls, artifact: Artifact, config: Configuration, *,
                threads: int) -> dict[str, Any]:
        """The IR and its saved compile properties, with ``threads`` added."""
        saved = json.loads((artifact.path / PROPERTIES_FILE).read_text())
        return {"model": MODEL_FILE, "device": DEVICE,
                "properties": saved | {"INFERENCE_NUM_THREADS": threads}}

    def load(self, artifact: Artifact, config: Configuration, *, threads: int) -> Session:
        """The standalone runtime's session, refused where the plugin compiled another
        precision than the one asked for."""
        runtime = self.runtime(artifact, config, threads=threads)
        session = standalone.open_session(artifact.path, runtime)
        wanted = runtime["properties"]["INFERENCE_PRECISION_HINT"]
        ran = session.details["inference_precision"]
        if ran != wanted:
            import openvino as ov
            import openvino.properties as props

            capabilities = ov.Core().get_property(DEVICE, props.device.capabilities)
            session.close()
            raise TrialFailed(
                f"OpenVINO compiled INFERENCE_PRECISION_HINT={wanted} as {ran} on this CPU "
                f"(capabilities: {', '.join(capabilities)}); a {precision_of(config)} trial "
                f"must not measure {ran}", stage="measure")
        return session


def _half_keep(model_path: Path, config: Any, held_out: Probe | None,
               details: dict[str, Any]) -> list[str]:
    """The ONNX nodes a bf16/f16 build keeps in f32: ``bf16_keep_fp32`` by name, then the
    ``bf16_keep_top`` most sensitive by the emulated ranking (recorded in ``details``)."""
    keep = list(option_value(config, "bf16_keep_fp32"))
    top = int(option_value(config, "bf16_keep_top"))
    if not top:
        return keep
    if held_out is None:
        raise TrialFailed("bf16_keep_top needs held-out rows to rank layers", stage="build")
    from tuner.transforms import half_emulation
    from workloads.onnx_files import file_sha256

    half = "bfloat16" if precision_of(config) == "bf16" else "float16"
    ranked = half_emulation.ranking(model_path, held_out, half=half,
                                    model_sha256=file_sha256(model_path))
    chosen = ranked["ranking"][:top]
    details["half_sensitivity"] = {
        "key": ranked["key"], "emulated": ranked["emulated"], "kept": chosen,
        "error_all_half": ranked["error_all_half"],
        "error_kept_fp32": {n: ranked["error_kept_fp32"][n] for n in chosen}}
    return keep + [name for name in chosen if name not in keep]


def _reshape(model: Any, example: Mapping[str, np.ndarray]) -> None:
    shapes = {}
    for port in model.inputs:
        name = next((n for n in port.get_names() if n in example), None)
        if name is None:
            raise TrialFailed(f"input {port.get_any_name()!r} is not in the example feed "
                              f"({', '.join(example)}); cannot fix its shape", stage="build")
        shapes[port.get_any_name()] = list(example[name].shape)
    model.reshape(shapes)


# The CPU plugin keeps a node in its original precision when its rt_info disables conversion
# to f16 (it checks f16 even under a bf16 hint: Node() sets keepOriginalPrecision, which
# Graph::EnforceInferencePrecision honours for bf16). Python cannot create that attribute,
# but the IR reader does, from this element; a legacy "precise" attribute maps to it too.
_KEEP = {"name": "DisablePrecisionConversion", "version": "0", "value": "dynamic:dynamic"}
_KEEP_KEY = "DisablePrecisionConversion_0"


def _keep_fp32(xml: Path, model: Any, source: onnx.ModelProto, names: list[str]) -> list[str]:
    """Mark the IR layers computing the ONNX nodes ``names`` to stay f32; returns the layers.

    The ONNX reader names a layer after its node (``fc1``), the parts of a node it splits
    after the node too (``fc1/WithoutBiases``), and a layer whose output is a graph output
    after that output, so a node is found by any of the three.
    """
    import openvino as ov

    by_output = {out: node.name for node in source.graph.node for out in node.output}
    wanted, found, layers = set(names), set(), set()
    for op in model.get_ops():
        if op.get_type_name() in ("Parameter", "Constant", "Result"):
            continue
        layer = op.get_friendly_name()
        nodes = {name for name in wanted if layer.startswith(name + "/")} | {layer}
        nodes |= {by_output.get(n) for out in op.outputs() for n in out.get_names()}
        if nodes & wanted:
            found |= nodes & wanted
            layers.add(layer)
    if wanted - found:
        raise TrialFailed(f"bf16_keep_fp32 names nodes the model does not have: "
                          f"{', '.join(sorted(wanted - found))}", stage="build")
    tree = ET.parse(xml)
    for layer in tree.getroot().iter("layer"):
        if layer.get("name") in layers:
            info = layer.find("rt_info")
            if info is None:
                info = ET.Element("rt_info")
                layer.insert(1 if layer.find("data") is not None else 0, info)
            ET.SubElement(info, "attribute", _KEEP)
    tree.write(xml, encoding="utf-8", xml_declaration=True)
    marked = {op.get_friendly_name() for op in ov.Core().read_model(str(xml)).get_ops()
              if _KEEP_KEY in op.get_rt_info()}
    if marked != layers:
        raise TrialFailed(f"the IR lost the f32 marks of {', '.join(sorted(layers - marked))}",
                          stage="build")
    return sorted(layers)

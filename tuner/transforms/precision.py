"""Precision transforms: fp16 via onnxconverter-common, int8 via onnxruntime.quantization.

Each transform writes a new ONNX file and returns facts a reproducer needs (which op
types and how many nodes became int8, whether pre-processing was used). Transforms
validate their output (``onnx.checker`` + an ORT session) so a broken conversion fails
the trial at build time with its reason, never later during measurement.

Static int8 follows what measured best here (TERRAIN.md): QDQ format, uint8 activations,
int8 weights, ``quant_pre_process`` first (with ``skip_symbolic_shape`` as fallback).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from tuner.config import Calibration, Configuration, Precision
from tuner.errors import TrialFailed, one_line

MAX_CALIBRATION_ROWS = 128


def apply_precision(model_path: Path, config: Configuration, out_path: Path, *,
                    calibration: dict[str, np.ndarray] | None) -> dict[str, Any]:
    """Write ``model_path`` converted to ``config.precision`` into ``out_path``."""
    config = config.normalized()
    try:
        if config.precision is Precision.FP32:
            out_path.write_bytes(model_path.read_bytes())
            return {}
        if config.precision is Precision.FP16:
            details = _to_fp16(model_path, out_path)
        elif config.precision is Precision.INT8_DYNAMIC:
            details = _quantize_dynamic(model_path, out_path, config)
        else:
            details = _quantize_static(model_path, out_path, config, calibration)
    except TrialFailed:
        raise
    except Exception as exc:
        raise TrialFailed(f"{config.precision} conversion failed: {one_line(exc)[:300]}",
                          stage="build") from None
    validate(out_path)
    return details | quantized_summary(out_path)


def validate(path: Path) -> None:
    """Raise TrialFailed unless ``path`` passes onnx.checker and loads in onnxruntime."""
    import onnx
    import onnxruntime as ort

    try:
        onnx.checker.check_model(str(path))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise TrialFailed(f"converted model is invalid: {one_line(exc)[:300]}",
                          stage="build") from None


def quantized_summary(path: Path) -> dict[str, Any]:
    """Count the int8 machinery in a model: which ops consume dequantized tensors."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    dequantized = {out for n in model.graph.node if n.op_type == "DequantizeLinear"
                   for out in n.output}
    consumers = Counter(n.op_type for n in model.graph.node
                        if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
                        and any(i in dequantized for i in n.input))
    integer_ops = Counter(n.op_type for n in model.graph.node
                          if n.op_type in ("MatMulInteger", "ConvInteger", "QLinearConv",
                                           "QLinearMatMul", "DynamicQuantizeLinear"))
    if not consumers and not integer_ops:
        return {}
    return {"int8_op_types": dict(sorted((consumers + integer_ops).items())),
            "int8_nodes": sorted(n.name for n in model.graph.node
                                 if n.op_type in integer_ops
                                 or (n.op_type not in ("QuantizeLinear", "DequantizeLinear")
                                     and any(i in dequantized for i in n.input)))}


def _to_fp16(model_path: Path, out_path: Path) -> dict[str, Any]:
    import onnx
    from onnxconverter_common import float16

    def convert(source: Path) -> None:
        model = onnx.load(str(source))
        onnx.save(float16.convert_float_to_float16(model, keep_io_types=True), str(out_path))
        validate(out_path)

    try:
        convert(model_path)
        return {"fp16_preprocessed": False}
    except TrialFailed:
        # Raw exporter graphs can mix float/float16 inputs after conversion; the
        # pre-processed (shape-inferred, optimized) graph converts cleanly.
        with tempfile.TemporaryDirectory() as tmp:
            convert(_preprocess(model_path, Path(tmp) / "pre.onnx")[0])
        return {"fp16_preprocessed": True}


def _quantize_dynamic(model_path: Path, out_path: Path, config: Configuration) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        source, how = _preprocess(model_path, Path(tmp) / "pre.onnx")
        quantize_dynamic(source, out_path, per_channel=bool(config.per_channel),
                         weight_type=QuantType.QInt8)
    return {"preprocess": how}


def _quantize_static(model_path: Path, out_path: Path, config: Configuration,
                     calibration: dict[str, np.ndarray] | None) -> dict[str, Any]:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not calibration:
        raise TrialFailed("int8-static needs the workload's calibration split", stage="build")
    methods = {Calibration.MINMAX: CalibrationMethod.MinMax,
               Calibration.ENTROPY: CalibrationMethod.Entropy,
               Calibration.PERCENTILE: CalibrationMethod.Percentile}
    rows = min(MAX_CALIBRATION_ROWS, len(next(iter(calibration.values()))))
    with tempfile.TemporaryDirectory() as tmp:
        source, how = _preprocess(model_path, Path(tmp) / "pre.onnx",
                                  optimize=not config.per_channel)
        quantize_static(source, out_path, _reader(calibration, rows),
                        quant_format=QuantFormat.QDQ, per_channel=bool(config.per_channel),
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=methods[config.calibration],
                        extra_options={"CalibTensorRangeSymmetric": False})
    return {"preprocess": how, "calibration_rows": rows}


def _preprocess(model_path: Path, out_path: Path, *,
                optimize: bool = True) -> tuple[Path, str]:
    """``quant_pre_process`` with the fallbacks that real models need; never fatal.

    ``optimize=False`` keeps MatMul+Add unfused: onnxruntime's per-channel static quantizer
    raises "truth value of an array is ambiguous" on the Gemm nodes that fusion creates.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    base = {} if optimize else {"skip_optimization": True}
    prefix = "" if optimize else "unoptimized, "
    for how, kwargs in ((f"{prefix}full", base),
                        (f"{prefix}no-symbolic-shape", base | {"skip_symbolic_shape": True})):
        try:
            quant_pre_process(str(model_path), str(out_path), **kwargs)
            return out_path, how
        except Exception:
            continue
    return model_path, "skipped"


def _reader(calibration: dict[str, np.ndarray], rows: int) -> Any:
    """A CalibrationDataReader feeding the calibration split one row at a time."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rewind()

        def get_next(self) -> dict[str, np.ndarray] | None:
            index = next(self._rows, None)
            if index is None:
                return None
            return {k: v[index:index + 1] for k, v in calibration.items()}

        def rewind(self) -> None:
            self._rows = iter(range(rows))

    return Reader()

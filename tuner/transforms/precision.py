"""Precision transforms: fp16 via onnxconverter-common, int8 via onnxruntime.quantization.

Each transform writes a new ONNX file and returns facts a reproducer needs (which nodes
became int8 and which stayed fp32, whether pre-processing was used). Transforms
validate their output (``onnx.checker`` + an ORT session) so a broken conversion fails
the trial at build time with its reason, never later during measurement.

Static int8 defaults to what measured best here (TERRAIN.md): QDQ format, uint8
activations, int8 weights, ``quant_pre_process`` first (with ``skip_symbolic_shape`` as
fallback). Mixed precision keeps the ``int8_keep_fp32`` most sensitive nodes in fp32, by a
ranking computed once per model (:mod:`tuner.transforms.sensitivity`). Calibration runs
once per (pre-processed model, calibration rows, method, op types) and its tensor ranges
are reused by every quantization that shares them (``PODIUM_HOME/calibration``).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Collection
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from tuner.errors import TrialFailed, one_line
from tuner.transforms import sensitivity
from tuner.transforms.sensitivity import Probe
from tuner.trial.config import Configuration, Precision
from workloads.layout import Layout


class Calibration(StrEnum):
    """How static int8 finds each tensor's range on the calibration rows."""

    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


class Int8OpTypes(StrEnum):
    """Which op types int8 quantizes: everything ORT can, or only the heavy linear ops.

    TERRAIN.md: restricting static QDQ to Conv/MatMul kept 99.5 % agreement on a real
    classifier where quantizing every op type kept 3 %.
    """

    ALL = "all"
    CONV_MATMUL = "conv-matmul"
    MATMUL = "matmul"


class QuantFormat(StrEnum):
    """Static int8 graph form: QDQ pairs (ORT fuses them) or QLinear* operators."""

    QDQ = "qdq"
    QOPERATOR = "qoperator"


_INTEGER_OPS = ("MatMulInteger", "ConvInteger", "MatMulIntegerToFloat", "QGemm", "QAttention",
                "DynamicQuantizeMatMul")
_QUANT_MACHINERY = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")
_LINEAR_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
_OP_TYPE_GROUPS = {Int8OpTypes.CONV_MATMUL: ("Conv", "MatMul", "Gemm"),
                   Int8OpTypes.MATMUL: ("MatMul", "Gemm")}


def apply_precision(model_path: Path, config: Configuration, out_path: Path, *,
                    calibration: dict[str, np.ndarray] | None,
                    probe: Probe | None = None, layout: Layout | None = None) -> dict[str, Any]:
    """Write ``model_path`` converted to ``config.precision`` into ``out_path``.

    ``calibration`` rows are canonical (batch on axis 0); ``layout`` feeds them to the model
    (batch axes, constants); None means every input is batched on axis 0.

    ``probe`` (held-out rows, not the calibration split) ranks node sensitivity when the
    configuration keeps some int8 nodes in fp32 (``int8_keep_fp32``).
    """
    config = config.normalized()
    try:
        if config.precision is Precision.FP32:
            out_path.write_bytes(model_path.read_bytes())
            return {}
        if config.precision is Precision.FP16:
            details = _to_fp16(model_path, out_path)
        elif config.precision is Precision.INT8_DYNAMIC:
            details = _quantize_dynamic(model_path, out_path, config, probe)
        elif config.precision is Precision.INT8_STATIC:
            details = _quantize_static(model_path, out_path, config, calibration, probe,
                                       layout or Layout.batch_first(list(calibration or {})))
        else:
            raise TrialFailed(f"no ONNX transform converts to {config.precision}; a backend "
                              "that runs it converts the fp32 graph itself", stage="build")
    except TrialFailed:
        raise
    except Exception as exc:
        raise TrialFailed(f"{config.precision} conversion failed: {one_line(exc)[:300]}",
                          stage="build") from None
    validate(out_path)
    return details if config.precision is Precision.FP16 else details | quantized_summary(out_path)


def validate(path: Path, *, what: str = "converted model") -> None:
    """Raise TrialFailed unless ``path`` passes onnx.checker and loads in onnxruntime."""
    import onnx
    import onnxruntime as ort

    try:
        onnx.checker.check_model(str(path))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise TrialFailed(f"{what} is invalid: {one_line(exc)[:300]}",
                          stage="build") from None


def quantized_summary(path: Path) -> dict[str, Any]:
    """Which nodes of a quantized model run in int8 and which stay fp32.

    A node runs in int8 when it is an integer operator, a Conv/MatMul/Gemm whose data and
    weight inputs are both dequantized (ORT fuses it into an integer kernel), or any other
    op wrapped as dequantize → op → quantize. An op that merely reads a dequantized tensor
    (a Softmax after an int8 MatMul whose output is not re-quantized) computes in fp32.
    Every node but the quantize / dequantize machinery is listed once, so a result is
    reproducible.
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    dequantized = {out for n in model.graph.node if n.op_type == "DequantizeLinear"
                   for out in n.output}
    quantized = {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}

    def runs_int8(node: Any) -> bool:
        if node.op_type in _QUANT_MACHINERY:
            return False
        if node.op_type.startswith("QLinear") or node.op_type in _INTEGER_OPS:
            return True
        if not any(i in dequantized for i in node.input):
            return False
        if node.op_type in _LINEAR_OPS:
            return all(i in dequantized for i in node.input[:2])
        return all(o in quantized for o in node.output)

    int8 = [n for n in model.graph.node if runs_int8(n)]
    names = {n.name for n in int8}
    return {"int8_op_types": dict(sorted(Counter(n.op_type for n in int8).items())),
            "int8_nodes": sorted(names),
            "fp32_nodes": sorted(n.name for n in model.graph.node
                                 if n.name not in names and n.op_type not in _QUANT_MACHINERY)}


def _to_fp16(model_path: Path, out_path: Path) -> dict[str, Any]:
    """Convert to fp16, keeping in fp32 what the converter cannot give a consistent dtype.

    onnxconverter-common retypes every float tensor to float16 but leaves a ``Cast(to=
    float)`` as it is, so a graph that casts an integer path to float (a one-hot, a mask)
    no longer type-checks: "Type (tensor(float16)) of output arg (…/Cast_1:0) does not
    match expected type". Such Casts are kept fp32 (the converter casts around them), then
    their consumers too if that is not enough; each attempt is validated, on the model as
    given and then pre-processed, and the first that loads is the artifact.
    """
    import onnx
    from onnxconverter_common import float16

    def convert(source: Path, block: list[str]) -> None:
        model = onnx.load(str(source))
        onnx.save(float16.convert_float_to_float16(model, keep_io_types=True,
                                                   node_block_list=block), str(out_path))
        validate(out_path)

    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        named = _name_nodes(model_path, Path(tmp) / "named.onnx")
        sources = [(named, False), (lambda: _preprocess(named, Path(tmp) / "pre.onnx")[0], True)]
        for source, preprocessed in sources:
            path = source() if callable(source) else source
            for block in _fp16_block_lists(path):
                try:
                    convert(path, block)
                    return {"fp16_preprocessed": preprocessed, "fp16_kept_fp32": block}
                except TrialFailed as exc:
                    errors.append(str(exc))
    raise TrialFailed(f"fp16 conversion gives no valid model, even with the float Casts and "
                      f"their consumers kept fp32: {errors[-1]}", stage="build")


def _fp16_block_lists(path: Path) -> list[list[str]]:
    """What to keep fp32, in the order tried: nothing; the Casts to float; those and the
    nodes that read them (fewer attempts where a list would repeat the one before)."""
    import onnx
    from onnx import TensorProto

    graph = onnx.load(str(path), load_external_data=False).graph
    casts = [n for n in graph.node if n.op_type == "Cast"
             and any(a.name == "to" and a.i == TensorProto.FLOAT for a in n.attribute)]
    names = [n.name for n in casts]
    outputs = {out for n in casts for out in n.output}
    readers = [n.name for n in graph.node if n.name not in names and outputs & set(n.input)]
    lists = [[], names, names + readers]
    return [block for i, block in enumerate(lists) if i == 0 or block != lists[i - 1]]


def _quantize_dynamic(model_path: Path, out_path: Path, config: Configuration,
                      probe: Probe | None) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    op_types = _op_types(config, IntegerOpsRegistry)

    def quantize(source: Path, out: Path, exclude: list[str]) -> None:
        quantize_dynamic(source, out, op_types_to_quantize=sorted(op_types),
                         per_channel=bool(config.per_channel),
                         reduce_range=bool(config.reduce_range), weight_type=QuantType.QInt8,
                         nodes_to_exclude=exclude)

    # Unfused: pre-processing would fuse MatMul + Add into Gemm, which the dynamic quantizer
    # still quantizes but ``nodes_to_exclude`` cannot keep in fp32 (measured: no effect).
    return _quantize_mixed(model_path, out_path, config, probe, quantize, op_types,
                           optimize=False)


def _quantize_static(model_path: Path, out_path: Path, config: Configuration,
                     calibration: dict[str, np.ndarray] | None,
                     probe: Probe | None, layout: Layout) -> dict[str, Any]:
    from onnxruntime.quantization import CalibrationMethod, QuantType, quantize_static
    from onnxruntime.quantization import QuantFormat as OrtQuantFormat
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    if not calibration:
        raise TrialFailed("int8-static needs the workload's calibration split", stage="build")
    methods = {Calibration.MINMAX: CalibrationMethod.MinMax,
               Calibration.ENTROPY: CalibrationMethod.Entropy,
               Calibration.PERCENTILE: CalibrationMethod.Percentile}
    qdq = config.quant_format is QuantFormat.QDQ
    # onnxruntime's own default for quantize_static is the union of both registries.
    op_types = _op_types(config, set(QDQRegistry) | set(QLinearOpsRegistry))
    rows = min(config.calibration_rows, len(next(iter(calibration.values()))))
    method = methods[config.calibration]
    calibrated: dict[Path, Path] = {}

    def quantize(source: Path, out: Path, exclude: list[str]) -> None:
        if source not in calibrated:
            calibrated[source] = _ranges_path(source, calibration, rows, method, op_types,
                                              layout)
        quantize_static(source, out, _reader(calibration, rows, layout),
                        calibration_cache_path=calibrated[source],
                        quant_format=OrtQuantFormat.QDQ if qdq else OrtQuantFormat.QOperator,
                        op_types_to_quantize=sorted(op_types),
                        per_channel=bool(config.per_channel),
                        reduce_range=bool(config.reduce_range),
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=exclude, calibrate_method=method,
                        extra_options={"CalibTensorRangeSymmetric": False,
                                       "ActivationSymmetric": bool(config.activation_symmetric)})

    details = _quantize_mixed(model_path, out_path, config, probe, quantize, op_types,
                              optimize=not config.per_channel)
    return details | {"calibration_rows": rows,
                      "calibration_ranges": [p.stem for p in calibrated.values()]}


def _ranges_path(source: Path, calibration: dict[str, np.ndarray], rows: int, method: Any,
                 op_types: Collection[str], layout: Layout) -> Path:
    """Where the calibrated tensor ranges of ``source`` are kept (``quantize_static``'s own
    calibration cache), keyed by everything that changes them.

    Keeping a node fp32, per-channel weights, the graph format, symmetric activations and
    reduce_range are applied after calibration, so every sensitivity run and every trial
    that differs only in those reuses one calibration instead of running the calibration
    rows through the augmented model again.
    """
    import hashlib
    import json

    from workloads.onnx_files import file_sha256
    from workloads.paths import cache_dir
    from workloads.versions import package_versions

    data = hashlib.sha256()
    for name, array in sorted(layout.feed({k: v[:rows] for k, v in calibration.items()}).items()):
        data.update(name.encode())
        data.update(np.ascontiguousarray(array).tobytes())
    material = {"model": file_sha256(source), "data": data.hexdigest(), "rows": rows,
                "method": str(method), "op_types": sorted(op_types),
                "onnxruntime": package_versions().get("onnxruntime")}
    key = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:24]
    return cache_dir("calibration") / f"{key}.json"


def _op_types(config: Configuration, registry: Collection[str]) -> set[str]:
    """The op types to quantize: ``all`` means every type the chosen quantizer supports."""
    if config.int8_op_types is Int8OpTypes.ALL:
        return set(registry)
    return set(_OP_TYPE_GROUPS[config.int8_op_types]) & set(registry)


def _quantize_mixed(model_path: Path, out_path: Path, config: Configuration,
                    probe: Probe | None, quantize: Callable[[Path, Path, list[str]], None],
                    op_types: set[str], *, optimize: bool) -> dict[str, Any]:
    """Pre-process, then quantize everything but the ``int8_keep_fp32`` most sensitive nodes.

    The ranking is only computed when a cut is asked for; it is cached per model and
    settings (:mod:`tuner.transforms.sensitivity`), so later trials of the same model only
    pay for one quantization.
    """
    from workloads.onnx_files import file_sha256

    with tempfile.TemporaryDirectory() as tmp:
        source, how = (_preprocess(model_path, Path(tmp) / "pre.onnx", optimize=optimize)
                       if config.quant_preprocess is not False else (model_path, "off"))
        source = _name_nodes(source, Path(tmp) / "named.onnx")
        details: dict[str, Any] = {"preprocess": how}
        kept: list[str] = []
        if config.int8_keep_fp32:
            if probe is None:
                raise TrialFailed("int8_keep_fp32 needs held-out rows to rank nodes",
                                  stage="build")
            settings = config.build_key() | {"int8_keep_fp32": None, "preprocess": how}
            ranked = sensitivity.ranking(
                source, lambda out, exclude: quantize(source, out, exclude), probe,
                model_sha256=file_sha256(model_path), op_types=op_types, settings=settings)
            kept = ranked["ranking"][:config.int8_keep_fp32]
            details["sensitivity"] = {k: ranked[k] for k in ("key", "ranking", "error_all_int8")}
        quantize(source, out_path, kept)
    return details | {"int8_kept_fp32": kept}


def _name_nodes(model_path: Path, out_path: Path) -> Path:
    """Give unnamed nodes a stable name: exclusion lists and reports refer to nodes by name."""
    import onnx

    model = onnx.load(str(model_path))
    unnamed = [n for n in model.graph.node if not n.name]
    if not unnamed:
        return model_path
    taken = {n.name for n in model.graph.node}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)
    onnx.save(model, str(out_path))
    return out_path


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


def _reader(calibration: dict[str, np.ndarray], rows: int, layout: Layout) -> Any:
    """A CalibrationDataReader feeding the calibration split one row at a time."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rewind()

        def get_next(self) -> dict[str, np.ndarray] | None:
            index = next(self._rows, None)
            if index is None:
                return None
            return layout.feed({k: v[index:index + 1] for k, v in calibration.items()})

        def rewind(self) -> None:
            self._rows = iter(range(rows))

    return Reader()

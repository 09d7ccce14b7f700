"""The Configuration of a trial: every knob Podium can turn, validated up front.

A Configuration is a pydantic model with ``extra="forbid"``: an unknown key or value is a
:class:`~tuner.errors.ConfigError` naming it, and so is a combination that cannot be built
(e.g. a calibration method without static int8, an ORT option on the TVM backend).
Fields that do not apply to the chosen backend/precision stay ``None``; :meth:`normalized`
fills their defaults so two spellings of the same configuration hash the same.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tuner.errors import ConfigError, describe_validation


class Backend(StrEnum):
    ORT = "ort"
    TVM = "tvm"


class Precision(StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8_DYNAMIC = "int8-dynamic"
    INT8_STATIC = "int8-static"

    @property
    def is_int8(self) -> bool:
        return self in (Precision.INT8_DYNAMIC, Precision.INT8_STATIC)


class Calibration(StrEnum):
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


class GraphCleanup(StrEnum):
    """ONNX-level clean-up before any precision change: none, or onnxscript's optimizer
    (constant folding, dead-code removal, pattern rewrites)."""

    NONE = "none"
    ONNXSCRIPT = "onnxscript"


class GraphOptimization(StrEnum):
    DISABLE = "disable"
    BASIC = "basic"
    EXTENDED = "extended"
    ALL = "all"


class ExecutionMode(StrEnum):
    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"


class TvmFeatures(StrEnum):
    """Which ISA the TVM target may use: the profile's own (``native``) or a safe floor."""

    NATIVE = "native"
    AVX2 = "avx2"
    GENERIC = "generic"


ORT_ONLY = ("ort_graph_optimization", "ort_execution_mode", "graph_cleanup")
TVM_ONLY = ("tvm_opt_level", "tvm_features", "tvm_tuning_trials")
INT8_ONLY = ("per_channel", "int8_keep_fp32", "int8_op_types", "reduce_range",
             "quant_preprocess")
STATIC_ONLY = ("calibration", "quant_format", "activation_symmetric", "calibration_rows")

ORT_DEFAULTS = {"ort_graph_optimization": GraphOptimization.ALL,
                "ort_execution_mode": ExecutionMode.SEQUENTIAL, "graph_cleanup": GraphCleanup.NONE}
TVM_DEFAULTS = {"tvm_opt_level": 3, "tvm_features": TvmFeatures.NATIVE, "tvm_tuning_trials": 0}
# The defaults reproduce Podium's int8 before mixed precision: every op type, nothing kept
# fp32, QDQ with asymmetric uint8 activations, full-range weights, ≤ 128 calibration rows.
INT8_DEFAULTS = {"per_channel": False, "int8_keep_fp32": 0, "int8_op_types": Int8OpTypes.ALL,
                 "reduce_range": False, "quant_preprocess": True}
STATIC_DEFAULTS = {"calibration": Calibration.MINMAX, "quant_format": QuantFormat.QDQ,
                   "activation_symmetric": False, "calibration_rows": 128}

# Fields that change the built artifact; the rest (threads, execution mode) are load-time.
ORT_BUILD_FIELDS = ("variant", "backend", "precision", "graph_cleanup", *INT8_ONLY, *STATIC_ONLY)
TVM_BUILD_FIELDS = ("variant", "backend", "precision", "batch", "tvm_opt_level",
                    "tvm_features", "tvm_tuning_trials", "hardware")


class Configuration(BaseModel):
    """One point of the search space.

    Example:
        >>> Configuration(variant="mlp", precision="int8-static", calibration="minmax")
        ...  # doctest: +SKIP
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    variant: str | None = Field(None, description="model variant; None = the workload's reference")
    backend: Backend = Backend.ORT
    precision: Precision = Precision.FP32
    calibration: Calibration | None = Field(None, description="static int8 only")
    per_channel: bool | None = Field(None, description="int8 only: per-channel weight scales")
    int8_keep_fp32: int | None = Field(
        None, ge=0, le=10_000,
        description="int8 only: how many of the most quantization-sensitive nodes stay fp32")
    int8_op_types: Int8OpTypes | None = Field(None, description="int8 only: op types to quantize")
    reduce_range: bool | None = Field(None, description="int8 only: 7-bit weights")
    quant_preprocess: bool | None = Field(
        None, description="int8 only: onnxruntime's quant_pre_process before quantizing")
    quant_format: QuantFormat | None = Field(None, description="static int8 only")
    activation_symmetric: bool | None = Field(
        None, description="static int8 only: symmetric activation ranges")
    calibration_rows: int | None = Field(None, ge=1, le=4096,
                                         description="static int8 only: calibration samples")
    ort_graph_optimization: GraphOptimization | None = None
    ort_execution_mode: ExecutionMode | None = None
    graph_cleanup: GraphCleanup | None = Field(
        None, description="ort only: ONNX clean-up before precision transforms")
    threads: int = Field(1, ge=1, le=1024, description="intra-op threads = cores reserved")
    batch: int = Field(1, ge=1, le=65536, description="samples per inference call")
    tvm_opt_level: int | None = Field(None, ge=0, le=3)
    tvm_features: TvmFeatures | None = None
    tvm_tuning_trials: int | None = Field(None, ge=0, le=100_000)
    hardware: str = "local"

    @model_validator(mode="after")
    def _check_combinations(self) -> Configuration:
        problems = []
        if self.backend is Backend.TVM:
            problems += [f"{k} applies to the ort backend only" for k in ORT_ONLY
                         if getattr(self, k) is not None]
            if self.precision.is_int8:
                problems.append("int8 precisions run on the ort backend only "
                                "(TVM consumes fp32/fp16 graphs)")
        else:
            problems += [f"{k} applies to the tvm backend only" for k in TVM_ONLY
                         if getattr(self, k) is not None]
        if not self.precision.is_int8:
            problems += [f"{k} applies to int8 precisions only" for k in INT8_ONLY
                         if getattr(self, k) is not None]
        if self.precision is not Precision.INT8_STATIC:
            problems += [f"{k} applies to precision=int8-static only" for k in STATIC_ONLY
                         if getattr(self, k) is not None]
        if self.ort_execution_mode is ExecutionMode.PARALLEL and self.threads < 2:
            problems.append("ort_execution_mode=parallel needs threads >= 2")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def parse(cls, values: dict[str, Any]) -> Configuration:
        """Validate ``values`` and raise :class:`ConfigError` with a one-line message."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            hint = f"unknown key (valid: {', '.join(cls.model_fields)})"
            raise ConfigError("invalid configuration: "
                              + describe_validation(exc, unknown_key_hint=hint)) from None

    def normalized(self) -> Configuration:
        """Return a copy with the defaults of the chosen backend/precision filled in."""
        update: dict[str, Any] = {}
        defaults = ORT_DEFAULTS if self.backend is Backend.ORT else TVM_DEFAULTS
        update |= {k: v for k, v in defaults.items() if getattr(self, k) is None}
        if self.precision.is_int8:
            update |= {k: v for k, v in INT8_DEFAULTS.items() if getattr(self, k) is None}
        if self.precision is Precision.INT8_STATIC:
            update |= {k: v for k, v in STATIC_DEFAULTS.items() if getattr(self, k) is None}
        return self.model_copy(update=update)

    def with_updates(self, **changes: Any) -> Configuration:
        """Return a validated copy with ``changes`` applied (strings are parsed)."""
        return Configuration.parse(self.model_dump(mode="json") | changes)

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def build_key(self) -> dict[str, Any]:
        """The fields that determine the built artifact (cache key material)."""
        fields = ORT_BUILD_FIELDS if self.backend is Backend.ORT else TVM_BUILD_FIELDS
        return {k: v for k, v in self.as_dict().items() if k in fields}

    def digest(self) -> str:
        """A stable short hash of the normalized configuration."""
        text = json.dumps(self.normalized().as_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def numerics_digest(config: Configuration) -> str:
    """Equal for configurations that compute the same numbers: they differ only in threads
    (ONNX Runtime's CPU kernels split work by output, so the thread count does not change
    a result; every bench grid here shows the same quality on 1 and 2 threads)."""
    return config.with_updates(threads=1).digest()


def speed_digest(config: Configuration) -> str:
    """Equal for configurations that run the same operators at the same speed: static int8
    differing only in how its ranges were calibrated (method, rows) builds the same graph
    with other scale constants. Not when sensitive nodes stay fp32: which ones depends on
    the calibration."""
    config = config.normalized()
    if config.precision is not Precision.INT8_STATIC or config.int8_keep_fp32:
        return config.digest()
    return config.with_updates(calibration=STATIC_DEFAULTS["calibration"],
                               calibration_rows=STATIC_DEFAULTS["calibration_rows"]).digest()


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """Turn ``["key=value", …]`` (CLI ``--set``) into a dict, rejecting malformed items."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        key = key.strip()
        if key not in Configuration.model_fields:
            valid = ", ".join(Configuration.model_fields)
            raise ConfigError(f"unknown configuration key {key!r} (valid: {valid})")
        result[key] = value.strip()
    return result

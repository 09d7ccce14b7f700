"""The search space: one conditional tree over every knob of a Configuration.

The tree is written once, in :meth:`Space.build`, against a ``choose(name, choices)``
callback, and everything else is derived from it:

* Optuna sampling — ``choose`` is ``trial.suggest_categorical`` (:meth:`Space.suggest`);
* the full grid — a depth-first walk over every choice (:meth:`Space.configurations`);
* Optuna params of a known configuration, for enqueueing (:meth:`Space.params_for`).

Conditional dimensions get their own parameter names (``ort_precision`` vs
``tvm_precision``) so that every Optuna distribution is fixed per name, and a dimension
with one allowed value is not suggested at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from tuner.errors import ConfigError
from tuner.trial.config import (
    Backend,
    Calibration,
    Configuration,
    ExecutionMode,
    GraphCleanup,
    GraphOptimization,
    Int8OpTypes,
    Precision,
    QuantFormat,
    TvmFeatures,
)

Choose = Callable[[str, list[Any]], Any]

ORT_PRECISIONS = [p.value for p in Precision]
TVM_PRECISIONS = [Precision.FP32.value, Precision.FP16.value]

# Configuration field → the Space dimensions it restricts (a ``space=`` override).
_OVERRIDES = {
    "variant": ("variants",), "backend": ("backends",),
    "precision": ("ort_precisions", "tvm_precisions"), "calibration": ("calibrations",),
    "per_channel": ("per_channel",), "ort_graph_optimization": ("ort_graph_optimization",),
    "ort_execution_mode": ("ort_execution_mode",), "threads": ("threads",),
    "batch": ("batch",), "tvm_opt_level": ("tvm_opt_level",),
    "tvm_features": ("tvm_features",), "tvm_tuning_trials": ("tvm_tuning_trials",),
    "hardware": ("hardware",), "int8_keep_fp32": ("int8_keep_fp32",),
    "int8_op_types": ("int8_op_types",), "reduce_range": ("reduce_range",),
    "quant_format": ("quant_format",), "activation_symmetric": ("activation_symmetric",),
    "calibration_rows": ("calibration_rows",), "graph_cleanup": ("graph_cleanup",),
    "quant_preprocess": ("quant_preprocess",),
}


@dataclass(frozen=True)
class Space:
    """Allowed values of every dimension; build one with :func:`default_space`."""

    variants: list[str]
    hardware: list[str] = field(default_factory=lambda: ["local"])
    backends: list[str] = field(default_factory=lambda: [b.value for b in Backend])
    ort_precisions: list[str] = field(default_factory=lambda: list(ORT_PRECISIONS))
    tvm_precisions: list[str] = field(default_factory=lambda: list(TVM_PRECISIONS))
    calibrations: list[str] = field(default_factory=lambda: [c.value for c in Calibration])
    per_channel: list[bool] = field(default_factory=lambda: [False, True])
    # Mixed precision: a cut of the sensitivity ranking, and which op types go int8.
    int8_keep_fp32: list[int] = field(default_factory=lambda: [0, 2, 8])
    int8_op_types: list[str] = field(
        default_factory=lambda: [Int8OpTypes.ALL.value, Int8OpTypes.CONV_MATMUL.value])
    reduce_range: list[bool] = field(default_factory=lambda: [False])
    # quant_pre_process on (default) or off: opt-in (``space={"quant_preprocess": [True, False]}``).
    quant_preprocess: list[bool] = field(default_factory=lambda: [True])
    quant_format: list[str] = field(default_factory=lambda: [QuantFormat.QDQ.value])
    activation_symmetric: list[bool] = field(default_factory=lambda: [False])
    calibration_rows: list[int] = field(default_factory=lambda: [128])
    ort_graph_optimization: list[str] = field(
        default_factory=lambda: [GraphOptimization.BASIC.value, GraphOptimization.ALL.value])
    ort_execution_mode: list[str] = field(default_factory=lambda: [ExecutionMode.SEQUENTIAL.value])
    # onnxscript clean-up is opt-in (``space={"graph_cleanup": ["none", "onnxscript"]}``).
    graph_cleanup: list[str] = field(default_factory=lambda: [GraphCleanup.NONE.value])
    threads: list[int] = field(default_factory=lambda: [1])
    batch: list[int] = field(default_factory=lambda: [1])
    tvm_opt_level: list[int] = field(default_factory=lambda: [3])
    tvm_features: list[str] = field(default_factory=lambda: [TvmFeatures.NATIVE.value])
    tvm_tuning_trials: list[int] = field(default_factory=lambda: [0])

    def build(self, choose: Choose) -> Configuration:
        """Walk the conditional tree, asking ``choose`` at every open decision."""

        def pick(name: str, choices: list[Any]) -> Any:
            if not choices:
                raise ConfigError(f"the search space leaves no value for {name}")
            return choices[0] if len(choices) == 1 else choose(name, list(choices))

        values: dict[str, Any] = {
            "hardware": pick("hardware", self.hardware),
            "variant": pick("variant", self.variants),
            "threads": pick("threads", self.threads),
            "batch": pick("batch", self.batch),
        }
        backend = pick("backend", self.backends)
        values["backend"] = backend
        if backend == Backend.ORT:
            precision = pick("ort_precision", self.ort_precisions)
            values["ort_graph_optimization"] = pick("ort_graph_optimization",
                                                    self.ort_graph_optimization)
            modes = self.ort_execution_mode if values["threads"] > 1 else ["sequential"]
            values["ort_execution_mode"] = pick("ort_execution_mode", modes)
            values["graph_cleanup"] = pick("graph_cleanup", self.graph_cleanup)
        else:
            precision = pick("tvm_precision", self.tvm_precisions)
            values["tvm_opt_level"] = pick("tvm_opt_level", self.tvm_opt_level)
            values["tvm_features"] = pick("tvm_features", self.tvm_features)
            values["tvm_tuning_trials"] = pick("tvm_tuning_trials", self.tvm_tuning_trials)
        values["precision"] = precision
        if precision in (Precision.INT8_DYNAMIC, Precision.INT8_STATIC):
            values["per_channel"] = pick("per_channel", self.per_channel)
            values["int8_op_types"] = pick("int8_op_types", self.int8_op_types)
            values["int8_keep_fp32"] = pick("int8_keep_fp32", self.int8_keep_fp32)
            values["reduce_range"] = pick("reduce_range", self.reduce_range)
            values["quant_preprocess"] = pick("quant_preprocess", self.quant_preprocess)
        if precision == Precision.INT8_STATIC:
            values["calibration"] = pick("calibration", self.calibrations)
            values["quant_format"] = pick("quant_format", self.quant_format)
            values["activation_symmetric"] = pick("activation_symmetric",
                                                  self.activation_symmetric)
            values["calibration_rows"] = pick("calibration_rows", self.calibration_rows)
        return Configuration.parse(values).normalized()

    def suggest(self, trial: Any) -> Configuration:
        """Sample a configuration with an Optuna trial."""
        return self.build(trial.suggest_categorical)

    def configurations(self) -> list[Configuration]:
        """Every configuration of the space (the grid), each exactly once."""
        found: list[Configuration] = []
        stack: list[list[int]] = [[]]
        while stack:
            prefix = stack.pop()
            widths: list[int] = []

            def choose(name: str, choices: list[Any], prefix=prefix, widths=widths) -> Any:
                depth = len(widths)
                widths.append(len(choices))
                return choices[prefix[depth] if depth < len(prefix) else 0]

            found.append(self.build(choose))
            full = prefix + [0] * (len(widths) - len(prefix))
            for depth in range(len(prefix), len(widths)):
                stack.extend([*full[:depth], i] for i in range(1, widths[depth]))
        return found

    def params_for(self, config: Configuration) -> dict[str, Any] | None:
        """Optuna params that make :meth:`build` return ``config``; None if outside."""
        config = config.normalized()
        wanted = config.as_dict() | {"ort_precision": config.precision.value,
                                     "tvm_precision": config.precision.value}
        params: dict[str, Any] = {}

        def choose(name: str, choices: list[Any]) -> Any:
            value = wanted[name]
            if value not in choices:
                raise LookupError(name)
            params[name] = value
            return value

        try:
            built = self.build(choose)
        except (LookupError, ConfigError):
            return None
        return params if built == config else None

    def size(self) -> int:
        return len(self.configurations())

    def restrict(self, overrides: dict[str, Any] | None) -> Space:
        """Apply a ``space=`` override: field → one value or a list of allowed values.

        ``precision`` narrows both backends' precision lists; a backend left without a
        precision is dropped, and a space left without any configuration is an error.
        """
        if not overrides:
            return self
        changes: dict[str, list[Any]] = {}
        for key, value in overrides.items():
            if key not in _OVERRIDES:
                raise ConfigError(f"unknown search-space dimension {key!r} "
                                  f"(valid: {', '.join(_OVERRIDES)})")
            values = list(value) if isinstance(value, list | tuple | set) else [value]
            allowed = [_coerce(key, v) for v in values]
            for dimension in _OVERRIDES[key]:
                if key == "precision":
                    changes[dimension] = [v for v in getattr(self, dimension) if v in allowed]
                else:
                    changes[dimension] = allowed
        restricted = replace(self, **changes)
        backends = [b for b in restricted.backends
                    if (restricted.ort_precisions if b == Backend.ORT
                        else restricted.tvm_precisions)]
        if not backends:
            raise ConfigError(f"the space override {overrides} leaves no valid configuration")
        return replace(restricted, backends=backends)


def _coerce(key: str, value: Any) -> Any:
    """Validate one override value with the type and bounds of Configuration's field."""
    from typing import Annotated

    from pydantic import TypeAdapter, ValidationError

    if key == "precision":
        if value not in ORT_PRECISIONS:
            raise ConfigError(f"invalid precision {value!r} (valid: {', '.join(ORT_PRECISIONS)})")
        return value
    info = Configuration.model_fields[key]
    annotation = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
    adapter = TypeAdapter(annotation)
    try:
        coerced = adapter.validate_python(value)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"]
        raise ConfigError(f"invalid value {value!r} for search-space dimension {key!r}: "
                          f"{message}") from None
    if coerced is None:
        raise ConfigError(f"search-space dimension {key!r} needs a value, not null")
    return coerced.value if hasattr(coerced, "value") else coerced


def default_space(variants: Iterable[str], *, hardware: list[str], cores: int,
                  fixed_batch: int | None = None) -> Space:
    """The default space for a workload: every variant, both backends, 1..cores threads,
    batches 1, 8 and 32 — or the one batch a model exported with a fixed batch takes."""
    return Space(variants=list(variants), hardware=list(hardware),
                 threads=list(range(1, cores + 1)),
                 batch=[fixed_batch] if fixed_batch else [1, 8, 32])


def space_fields() -> list[str]:
    return [f.name for f in fields(Space)]

"""What the OpenVINO backend declares: its precisions per ISA and its configuration keys.

Importing this module imports neither OpenVINO nor NNCF: the search space, the
configuration validator and ``podium backends list`` read these declarations without
loading the engine.

A precision is offered only where the CPU computes in it. OpenVINO itself accepts bf16 on
any AVX-512 CPU (emulated, slower than f32) and turns a bf16 or f16 request into f32 on a
CPU without them without a word (measured on AMD Zen 3), so the ISA decides here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tuner.backends.base import Condition, Option
from tuner.errors import HardwareError

EXPORT_FORMAT = "openvino-ir"
PRECISIONS = ("fp32", "bf16", "fp16", "int8-static")
# Which /proc/cpuinfo flags give native compute for a precision.
NEEDS = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16"),
         "int8-static": ("avx2", "avx512f")}
HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8-static": "f32"}
_UNSUPPORTED = ("precision {precision} is not supported by the openvino backend on this "
                "hardware: its ISA lacks {flags} (has: {isa})")

_INT8 = Condition("precision", one_of=("int8-static",), label="precision=int8-static")
_HALF = Condition("precision", one_of=("bf16", "fp16"), label="precision=bf16/fp16")
_ACCURACY_CONTROL = Condition("nncf_accuracy_control", one_of=(True,),
                              label="nncf_accuracy_control=true")

OPTIONS: tuple[Option, ...] = (
    Option("ov_static_shapes", short="static", default=True, choices=(True, False),
           help="reshape to the trial's input shapes: static shapes let the CPU plugin pick "
                "kernels and memory once, at compile time (dynamic ones cost ~40 µs a call)"),
    Option("ov_performance_hint", short="hint",
           default="latency", choices=("latency", "throughput"),
           help="PERFORMANCE_HINT: how the plugin sizes streams and its thread pool"),
    Option("ov_num_streams", short="streams", default=1, choices=(1, 2),
           help="NUM_STREAMS: one call at a time uses one stream; more help concurrent calls"),
    Option("ov_cpu_pinning", short="pin", default=True, choices=(True, False),
           help="ENABLE_CPU_PINNING: pin inference threads inside the cores the trial holds"),
    Option("ov_hyper_threading", short="ht", default=False, choices=(False, True),
           help="ENABLE_HYPER_THREADING: false keeps one thread per physical core"),
    Option("nncf_preset", short="preset", default="performance", choices=("performance", "mixed"),
           applies=_INT8,
           help="symmetric int8 activations (fastest), or asymmetric ones for one-sided "
                "values (GELU/Swish outputs)"),
    Option("nncf_model_type", short="type",
           default="none", choices=("none", "transformer"), applies=_INT8,
           help="transformer: SmoothQuant, and no int8 on adds, normalization, reductions"),
    Option("nncf_fast_bias_correction", short="fast-bias",
           default=True, choices=(True, False), applies=_INT8,
           help="fast bias correction (seconds) or the full one (slower, sometimes better)"),
    Option("ignored_nodes", short="ignored", default=(), kind=tuple, applies=_INT8,
           help="ONNX node names kept in f32 (comma-separated), the most sensitive first"),
    Option("nncf_accuracy_control", short="acc-ctl",
           default=False, choices=(False, True), applies=_INT8,
           help="quantize_with_accuracy_control: return layers to f32 until the relative "
                "quality drop on held-out rows is within max_drop"),
    Option("max_drop", short="drop", default=0.01, low=0.0, high=1.0, kind=float,
           applies=(_INT8, _ACCURACY_CONTROL), follows_quality_floor=True,
           help="largest relative quality drop accuracy control accepts (0.01: ≥ 99 % of "
                "f32; a search's quality_ratio >= q constraint sets it to 1 - q)"),
    Option("bf16_keep_fp32", short="bf16 f32", default=(), kind=tuple, applies=_HALF,
           help="ONNX node names the CPU plugin keeps in f32 under a bf16/f16 hint"),
    Option("bf16_keep_top", short="bf16-keep",
           default=0, low=0, high=10_000, searched=(0, 2, 8), applies=_HALF,
           help="how many of the most bf16/f16-sensitive compute nodes stay f32 (ranked on "
                "held-out rows with emulated rounding)"),
)
_DEFAULTS = {option.name: option.default for option in OPTIONS}


def option_value(config: Any, name: str) -> Any:
    """``config.name`` as a plain value, or the declared default where it is unset."""
    value = getattr(config, name, None)
    if value is None:
        value = _DEFAULTS[name]
    return getattr(value, "value", value)


def precision_of(config: Any) -> str:
    precision = getattr(config, "precision", "fp32")
    return str(getattr(precision, "value", precision))


def supported_precisions(isa: Iterable[str]) -> set[str]:
    """The precisions this backend runs natively on a CPU with the ``isa`` flags."""
    flags = set(isa)
    return {"fp32"} | {p for p, needs in NEEDS.items() if flags.intersection(needs)}


def check_precision(precision: str, isa: Iterable[str]) -> None:
    """Raise :class:`HardwareError` naming the missing flags if ``isa`` cannot run it."""
    isa = sorted(isa)
    if precision not in PRECISIONS:
        raise HardwareError(f"precision {precision} is not available on the openvino backend "
                            f"(valid: {', '.join(PRECISIONS)})")
    if precision not in supported_precisions(isa):
        raise HardwareError(_UNSUPPORTED.format(precision=precision,
                                                flags=" or ".join(NEEDS[precision]),
                                                isa=", ".join(isa) or "none listed"))

"""Apache TVM backend: compile the ONNX graph ahead of time into one shared library.

The artifact is ``model.so`` (the Relax VM executable with the weights baked in) plus
``io.json`` (input names, shapes and dtypes), so a measuring process needs neither ONNX nor
the compiler. Shapes are static: the batch is fixed at build time (it is in the cache key).

Without tuning, TVM's default CPU pipeline emits unscheduled loops: correct, single-threaded
and slow. ``tvm_tuning_trials`` runs MetaSchedule (:mod:`tuner.backends.tvm.tuning`), which
is what makes TVM competitive; the ONNX import is :mod:`tuner.backends.tvm.frontend`.
"""

from __future__ import annotations

import copy
import json
import os
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.backends.base import Artifact, Backend, Option, Precision, plain
from tuner.backends.standalone import tvm as standalone
from tuner.backends.tvm.frontend import import_onnx, short_error
from tuner.backends.tvm.tuning import lowering_passes, tuned_database
from tuner.errors import HardwareError, TrialFailed
from tuner.hardware import HardwareProfile, missing_here, tvm_target_for

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import onnx

    from tuner.trial.config import Configuration
    from workloads.base import Workload

LIBRARY_FILE = "model.so"
IO_FILE = "io.json"
# The tuning budget a search gives a TVM build (a tuning database makes repeats cheap).
SEARCHED_TUNING = 64


class TvmFeatures(StrEnum):
    """Which ISA the TVM target may use: the profile's own (``native``) or a safe floor."""

    NATIVE = "native"
    AVX2 = "avx2"
    GENERIC = "generic"


OPTIONS = (
    Option("tvm_opt_level", short="opt",
           default=3, low=0, high=3, help="Relax pass-context opt level"),
    Option("tvm_features", short="isa", default=TvmFeatures.NATIVE, choices=tuple(TvmFeatures),
           help="the ISA the target may use: the profile's (native) or a portable floor"),
    Option("tvm_tuning_trials", short="tune",
           default=0, low=0, high=100_000, searched=(SEARCHED_TUNING,),
           help="MetaSchedule trials, 0 = untuned (searched only where the space asks: "
                "untuned TVM runs 40-80× slower than ONNX Runtime)"),
)


class TvmBackend(Backend):
    """fp32 and fp16 graphs (int8 stays on ONNX Runtime: TVM consumes float graphs),
    compiled for one target at one batch."""

    name = "tvm"
    export_format = "tvm-relax-library"
    runtime_module = standalone.__name__
    precisions = (Precision.FP32.value, Precision.FP16.value)
    options = OPTIONS
    build_keys = ("batch", "hardware")
    packages = ("apache-tvm", "apache-tvm-ffi", "xgboost")
    in_default_space = False
    left_out = ("MetaSchedule tuning costs minutes per model and untuned TVM runs 40-80× "
                "slower than ONNX Runtime; name it in the space to search it "
                '(e.g. {"backend": ["ort", "openvino", "tvm"]})')

    @classmethod
    def hardware_spec(cls, profile: HardwareProfile, config: Configuration) -> dict[str, Any]:
        """The profile's TVM target at the configuration's feature level."""
        features = plain(config.tvm_features or TvmFeatures.NATIVE)
        return {"tvm_target": tvm_target_for(profile, features)}

    @classmethod
    def check_target(cls, profile: HardwareProfile, config: Configuration) -> None:
        """Impossible features for the profile, and — measurements run here — a native
        build for a simulated host whose ISA this machine lacks, are refused."""
        cls.hardware_spec(profile, config)
        lacking = missing_here(profile.isa) if profile.detected else []
        if lacking and plain(config.tvm_features or TvmFeatures.NATIVE) == TvmFeatures.NATIVE:
            raise HardwareError(f"{profile.description.split(':')[0]}: a native TVM build uses "
                                f"{', '.join(lacking)}, which this machine lacks; set "
                                "tvm_features=avx2 or generic")

    @classmethod
    def cache_key(cls, config: Configuration, profile: HardwareProfile,
                  workload: Workload) -> dict[str, Any]:
        """The target, and the static shapes it is compiled for, which a dynamic dim takes
        from the workload's data."""
        return {"target": cls.hardware_spec(profile, config)["tvm_target"],
                "input_shapes": {name: list(array.shape) for name, array
                                 in sorted(workload.example_feed(config.batch).items())}}

    def build(self, model_path: Path, config: Configuration, out_dir: Path, *,
              calibration: dict[str, np.ndarray] | None, hardware: dict[str, Any],
              example: dict[str, np.ndarray] | None = None,
              feed: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
              ) -> Artifact:
        self.require_precision(config, hardware)
        import onnx
        import tvm
        import tvm_ffi

        start = time.perf_counter()
        config = config.normalized()
        target_spec = copy.deepcopy(hardware["tvm_target"])
        target_spec.setdefault("num-cores", hardware["cores"])
        target = tvm.target.Target(copy.deepcopy(target_spec))
        model = onnx.load(str(model_path))
        inputs = _input_specs(model, config.batch, example)
        mod, import_error = import_onnx(model, inputs)
        database, tuning = None, {"tune_s": 0.0}
        if config.tvm_tuning_trials:
            tune_start = time.perf_counter()
            database, tuning = tuned_database(
                mod, target, config.tvm_tuning_trials,
                threads=min(hardware["cores"], len(os.sched_getaffinity(0))),
                child={"model": str(model_path), "inputs": inputs, "target": target_spec})
            tuning["tune_s"] = round(time.perf_counter() - tune_start, 3)
        try:
            executable = _compile(mod, target, config.tvm_opt_level, database)
            executable.export_library(str(out_dir / LIBRARY_FILE))
        except Exception as exc:  # TVM raises its own FFI errors as well as builtins.
            raise TrialFailed(f"TVM compilation failed: {short_error(exc)}", stage="build") from exc
        io = {"inputs": inputs, "outputs": len(model.graph.output)}
        (out_dir / IO_FILE).write_text(json.dumps(io, indent=2))
        artifact = Artifact(
            path=out_dir, backend=self.name, files=[LIBRARY_FILE, IO_FILE],
            model_size_bytes=(out_dir / LIBRARY_FILE).stat().st_size,
            build_s=time.perf_counter() - start,
            details={"target": target_spec, "opt_level": config.tvm_opt_level,
                     "tuning_trials": config.tvm_tuning_trials,
                     "import_fallback": import_error is not None, "import_error": import_error,
                     "tvm_version": tvm.__version__, "tvm_ffi_version": tvm_ffi.__version__,
                     **tuning})
        artifact.save()
        return artifact

    @classmethod
    def runtime(cls, artifact: Artifact, config: Configuration, *,
                threads: int) -> dict[str, Any]:
        """The library, its inputs' static shapes (``io.json``) and the pool size."""
        io = json.loads((artifact.path / IO_FILE).read_text())
        return {"library": LIBRARY_FILE, "inputs": io["inputs"], "threads": threads}


def _input_specs(model: onnx.ModelProto, batch: int,
                 example: dict[str, np.ndarray] | None = None) -> list[dict[str, Any]]:
    """Each graph input with static dims: those of ``example`` (one call's inputs, so every
    dynamic dim — the batch on whichever axis, a ``-1`` image size — is resolved from real
    data), else the first dim set to ``batch`` and the others as declared."""
    from onnx.helper import tensor_dtype_to_np_dtype

    weights = {init.name for init in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in weights:  # old exporters list initializers as inputs too
            continue
        tensor = value.type.tensor_type
        dtype = str(tensor_dtype_to_np_dtype(tensor.elem_type))
        if example is not None and value.name in example:
            specs.append({"name": value.name, "shape": list(example[value.name].shape),
                          "dtype": dtype})
            continue
        shape = [batch]
        for axis, dim in enumerate(tensor.shape.dim[1:], start=1):
            if not dim.HasField("dim_value") or dim.dim_value <= 0:
                raise TrialFailed(f"input {value.name!r} has a dynamic dimension {axis} "
                                  f"({dim.dim_param or '?'}); TVM needs static shapes apart "
                                  "from the batch", stage="build")
            shape.append(dim.dim_value)
        specs.append({"name": value.name, "shape": shape, "dtype": dtype})
    return specs


def _compile(mod: Any, target: Any, opt_level: int, database: Any) -> Any:
    """Compile with TVM's default CPU pipeline, or with the tuning records applied."""
    import tvm
    from tvm import relax
    from tvm.relax.backend.cpu_generic import pipeline

    if database is None:
        with tvm.transform.PassContext(opt_level=opt_level):
            return tvm.compile(mod, target=target)
    # The default pipeline plus MetaScheduleApplyDatabase right after fusion, where the
    # kernels look exactly as they did when their tasks were extracted.
    with target, database, tvm.transform.PassContext(opt_level=opt_level):
        passes = [*lowering_passes(target), relax.transform.MetaScheduleApplyDatabase(),
                  *pipeline.dataflow_lower_passes(target), *pipeline.finalize_passes(target)]
        return tvm.compile(mod, target=target, relax_pipeline=tvm.transform.Sequential(passes))

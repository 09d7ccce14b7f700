"""Apache TVM backend: compile the ONNX graph ahead of time into one shared library.

The artifact is ``model.so`` (the Relax VM executable with the weights baked in) plus
``io.json`` (input names, shapes and dtypes), so a measuring process needs neither ONNX nor
the compiler. Shapes are static: the batch is fixed at build time (it is in the cache key).

Without tuning, TVM's default CPU pipeline emits unscheduled loops: correct, single-threaded
and slow. ``tvm_tuning_trials`` runs MetaSchedule, which is what makes TVM competitive. Its
schedules go to a per-target tuning database (:mod:`tuner.backends.tvm_database`), so a later
build of the same kernels on the same target reuses them instead of tuning again.

Search: MetaSchedule's evolutionary search, guided by its XGBoost cost model when
``xgboost`` is importable (a random one otherwise). Its mutators copy IR modules through
JSON, and apache-tvm-ffi 0.1.15 segfaults serializing any IR node that holds a dtype
(``ToJSONGraph``; 0.1.14 does not). So a child process first checks that serialization
works; if it does not, or the evolutionary search raises, tuning falls back to random
sampling of the design space (``replay-func``, no mutators), which serializes nothing.
Candidates are always built in-process, into an in-memory database: TVM's LocalBuilder
pickles each module into a fresh pool per batch whose workers spend 20-45 s importing
``tvm.s_tir.tensor_intrin`` here, past its 30 s build timeout.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.backends.base import Artifact, Backend, Session
from tuner.backends.tvm_database import TuningDatabase, canonical_target
from tuner.errors import TrialFailed, one_line

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from tuner.config import Configuration

LIBRARY_FILE = "model.so"
IO_FILE = "io.json"
_ERROR_CHARS = 300
# Caps the candidates measured per round, so a large budget still revisits every task.
_TRIALS_PER_ITER = 16
EVOLUTIONARY, REPLAY_FUNC = "evolutionary", "replay-func"
# Schedules sampled and scored per evolutionary round (TVM's default is 512); two cores
# spend seconds per round on each task at the default.
_POPULATION = 256
_PROBE_TIMEOUT_S = 120.0


class TvmSession(Session):
    """A Relax VM over the compiled library, with input buffers allocated once."""

    def __init__(self, library: Path, io: dict[str, Any]) -> None:
        import tvm
        from tvm import relax

        device = tvm.cpu()
        self._vm = relax.VirtualMachine(tvm.runtime.load_module(str(library)), device)
        self._main = self._vm["main"]
        self._tensor_type = tvm.runtime.Tensor
        self.input_names = [spec["name"] for spec in io["inputs"]]
        self._buffers = [tvm.runtime.empty(spec["shape"], spec["dtype"], device)
                         for spec in io["inputs"]]

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        for name, buffer in zip(self.input_names, self._buffers, strict=True):
            buffer.copyfrom(inputs[name])
        result = self._main(*self._buffers)
        if isinstance(result, self._tensor_type):
            return [result.numpy()]
        return [item.numpy() for item in result]

    def close(self) -> None:
        self._main = self._vm = None
        self._buffers = []


class TvmBackend(Backend):
    name = "tvm"

    def build(self, model_path: Path, config: Configuration, out_dir: Path, *,
              calibration: dict[str, np.ndarray] | None, hardware: dict[str, Any]) -> Artifact:
        import onnx
        import tvm
        import tvm_ffi

        start = time.perf_counter()
        config = config.normalized()
        target_spec = copy.deepcopy(hardware["tvm_target"])
        target_spec.setdefault("num-cores", hardware["cores"])
        target = tvm.target.Target(copy.deepcopy(target_spec))
        model = onnx.load(str(model_path))
        inputs = _input_specs(model, config.batch)
        mod, import_error = _import(model, inputs)
        database, tuning = None, {"tune_s": 0.0}
        if config.tvm_tuning_trials:
            tune_start = time.perf_counter()
            database, tuning = _tuned_database(
                mod, target, config.tvm_tuning_trials,
                threads=min(hardware["cores"], len(os.sched_getaffinity(0))))
            tuning["tune_s"] = round(time.perf_counter() - tune_start, 3)
        try:
            executable = _compile(mod, target, config.tvm_opt_level, database)
            executable.export_library(str(out_dir / LIBRARY_FILE))
        except Exception as exc:  # TVM raises its own FFI errors as well as builtins.
            raise TrialFailed(f"TVM compilation failed: {_short(exc)}", stage="build") from exc
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

    def load(self, artifact: Artifact, config: Configuration, *, threads: int) -> Session:
        # TVM sizes its pool from TVM_NUM_THREADS when the pool starts, and its default
        # (half the hardware threads) ignores the cores this process was given. Binding is
        # off so the pool's threads keep the affinity the measuring worker pinned.
        os.environ["TVM_NUM_THREADS"] = str(threads)
        os.environ["TVM_BIND_THREADS"] = "0"
        import tvm

        io = json.loads((artifact.path / IO_FILE).read_text())
        session = TvmSession(artifact.path / LIBRARY_FILE, io)
        # Starts the calling thread's pool now rather than inside the first timed call;
        # mode 1 ("big cores") with an explicit count uses exactly ``threads`` workers.
        tvm.get_global_func("runtime.config_threadpool")(1, threads)
        return session


def _input_specs(model: onnx.ModelProto, batch: int) -> list[dict[str, Any]]:
    """Each graph input with its first dimension set to ``batch``; other dims must be fixed."""
    from onnx.helper import tensor_dtype_to_np_dtype

    weights = {init.name for init in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in weights:  # old exporters list initializers as inputs too
            continue
        tensor = value.type.tensor_type
        shape = [batch]
        for axis, dim in enumerate(tensor.shape.dim[1:], start=1):
            if not dim.HasField("dim_value"):
                raise TrialFailed(f"input {value.name!r} has a dynamic dimension {axis} "
                                  f"({dim.dim_param or '?'}); TVM needs static shapes apart "
                                  "from the batch", stage="build")
            shape.append(dim.dim_value)
        specs.append({"name": value.name, "shape": shape,
                      "dtype": str(tensor_dtype_to_np_dtype(tensor.elem_type))})
    return specs


def _import(model: onnx.ModelProto, inputs: list[dict[str, Any]]) -> tuple[Any, str | None]:
    """Import into Relax; on failure retry once on a shape-inferred, constant-folded copy.

    Real exports compute Reshape targets from ``Shape`` ops, which TVM's importer only
    accepts once the batch is fixed and those chains are folded to constants. Returns the
    module and why the plain import failed (None if it did not), so the artifact says so.
    """
    from tvm.relax.frontend.onnx import from_onnx

    shapes = {spec["name"]: spec["shape"] for spec in inputs}
    dtypes = {spec["name"]: spec["dtype"] for spec in inputs}
    try:
        return from_onnx(model, shape_dict=shapes, dtype_dict=dtypes), None
    except Exception as first:  # the importer raises anything from KeyError to TVMError
        try:
            folded = _folded(model, shapes)
            return from_onnx(folded, shape_dict=shapes, dtype_dict=dtypes), _short(first)
        except Exception as second:
            raise TrialFailed(f"TVM cannot import the model: {_short(first)}; after shape "
                              f"inference and folding: {_short(second)}",
                              stage="build") from first


def _folded(model: onnx.ModelProto, shapes: dict[str, list[int]]) -> onnx.ModelProto:
    """A copy with static input shapes, inferred shapes and constant-folded shape math."""
    import onnx
    import onnxscript.optimizer

    static = copy.deepcopy(model)
    for value in static.graph.input:
        if value.name in shapes:
            value.type.tensor_type.shape.dim[0].dim_value = shapes[value.name][0]
    return onnxscript.optimizer.optimize(onnx.shape_inference.infer_shapes(static))


def _tuned_database(mod: Any, target: Any, trials: int, *,
                    threads: int) -> tuple[Any, dict[str, Any]]:
    """Schedules for every fused kernel: from the tuning database, tuning only what it lacks.

    A task is reused when the database holds a record of this exact target tuned with at
    least ``trials`` trials; the others are tuned with their share of the budget and stored.
    """
    from tvm.s_tir import meta_schedule as ms

    tasks = ms.relax_integration.extract_tasks(_fused(mod, target), target)
    if not tasks:
        return None, {"tuning_tasks": 0, "tuned_tasks": 0, "tuning_records": 0}
    store = TuningDatabase(canonical_target(target))
    database, missing = store.load(tasks, budget=trials)
    search: dict[str, Any] = {}
    if missing:
        per_task = max(1, trials // len(tasks))
        records, search = _search(missing, target, per_task, threads=threads)
        store.add_tuned(records, missing, budget=trials)
        database, _ = store.load(tasks, budget=trials)
    return database, {"tuning_tasks": len(tasks), "tuned_tasks": len(missing),
                      "tuning_records": len(database), "tuning_database": str(store.folder),
                      **search}


def _search(tasks: list[Any], target: Any, per_task: int, *,
            threads: int) -> tuple[Any, dict[str, Any]]:
    """Tune with the best search this TVM survives; say which ran and why not a better one."""
    fallback = None if _serialization_works() else (
        "tvm-ffi cannot serialize IR here (the ToJSONGraph crash), so no evolutionary search")
    if fallback is None:
        cost_model = "xgb" if _has_xgboost() else "random"
        try:
            records = _tune(tasks, target, per_task, threads=threads, strategy=EVOLUTIONARY,
                            cost_model=cost_model)
            return records, {"tuning_search": f"{EVOLUTIONARY}+{cost_model}",
                             "tuning_fallback": None}
        except TrialFailed as exc:
            fallback = f"evolutionary search failed: {exc}"
    records = _tune(tasks, target, per_task, threads=threads, strategy=REPLAY_FUNC,
                    cost_model="random")
    return records, {"tuning_search": f"{REPLAY_FUNC}+random", "tuning_fallback": fallback}


@functools.cache
def _serialization_works() -> bool:
    """Whether this TVM can write IR to JSON: tried in a child, since failing is a segfault."""
    probe = "import tvm; tvm.ir.load_json(tvm.ir.save_json(tvm.tirx.IntImm('int32', 1)))"
    try:
        return subprocess.run([sys.executable, "-c", probe], capture_output=True,
                              timeout=_PROBE_TIMEOUT_S, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _has_xgboost() -> bool:
    import importlib.util

    return importlib.util.find_spec("xgboost") is not None


def _tune(tasks: list[Any], target: Any, per_task: int, *, threads: int, strategy: str,
          cost_model: str) -> Any:
    """Tune ``tasks`` with MetaSchedule, ``per_task`` candidates each; return the records."""
    import logging

    # MetaSchedule rebuilds its logging config from the names of the handlers already on its
    # logger and fails on an unnamed one (a host application's, e.g. a test runner's).
    ms_logger = logging.getLogger("tvm.s_tir.meta_schedule")
    for handler in list(ms_logger.handlers):
        if handler.get_name() is None:
            ms_logger.removeHandler(handler)
    from tvm.s_tir import meta_schedule as ms

    if strategy == EVOLUTIONARY:
        space = ms.space_generator.PostOrderApply()
        search: Any = ms.search_strategy.EvolutionarySearch(population_size=_POPULATION)
    else:  # the mutators serialize the module (see the module docstring)
        space = ms.space_generator.PostOrderApply(sch_rules="from-target",
                                                  postprocs="from-target", mutator_probs={})
        search = strategy
    # The runner's worker times candidates on the build's cores; TVM reads the count with
    # getenv(), so putenv is enough (and pickles by reference).
    runner = ms.runner.LocalRunner(
        evaluator_config=ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=50),
        initializer=functools.partial(os.putenv, "TVM_NUM_THREADS", str(threads)))
    try:
        with tempfile.TemporaryDirectory(prefix="podium-tvm-tune-") as work_dir:
            contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
                tasks, work_dir, space=space, strategy=search, num_threads=threads,
                seed=0)
            return ms.tune_tasks(
                tasks=contexts, task_weights=weights, work_dir=work_dir,
                max_trials_global=per_task * len(tasks), max_trials_per_task=per_task,
                num_trials_per_iter=min(per_task, _TRIALS_PER_ITER),
                builder=_in_process_builder(), runner=runner, database="memory",
                cost_model=cost_model, task_scheduler="round-robin")
    except Exception as exc:
        raise TrialFailed(f"TVM MetaSchedule {strategy} tuning failed: {_short(exc)}",
                          stage="build") from exc
    finally:
        runner.pool.shutdown()


def _in_process_builder() -> Any:
    """A MetaSchedule builder that compiles candidates in this process (see the docstring)."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.builder.local_builder import default_build, default_export

    @derived_object
    class InProcessBuilder(PyBuilder):
        def build(self, build_inputs: list[Any]) -> list[Any]:
            results = []
            for item in build_inputs:
                try:
                    path = default_export(default_build(item.mod, item.target, None))
                    results.append(BuilderResult(path, None))
                except Exception as exc:  # one bad candidate is a failed trial, not a crash
                    results.append(BuilderResult(None, _short(exc)))
            return results

    return InProcessBuilder()


def _lowering_passes(target: Any) -> list[Any]:
    """Legalize and fuse: tuning tasks are extracted after these, and records applied.

    The CPU pipeline's own module, because ``tvm.relax.pipeline``'s per-target dispatchers
    reach for ``cpu_generic.dataflow_lower_passes``, which that package does not export.
    """
    from tvm.relax.backend.cpu_generic import pipeline

    return [*pipeline.library_dispatch_passes(target), *pipeline.legalize_passes(target)]


def _fused(mod: Any, target: Any) -> Any:
    import tvm

    with target:
        return tvm.transform.Sequential(_lowering_passes(target))(mod)


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
        passes = [*_lowering_passes(target), relax.transform.MetaScheduleApplyDatabase(),
                  *pipeline.dataflow_lower_passes(target), *pipeline.finalize_passes(target)]
        return tvm.compile(mod, target=target, relax_pipeline=tvm.transform.Sequential(passes))


def _short(error: BaseException) -> str:
    return one_line(error)[:_ERROR_CHARS]

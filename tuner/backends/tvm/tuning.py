"""MetaSchedule tuning for the TVM backend, with its schedules kept in the tuning database.

A build extracts the fused kernels of its model as tuning tasks, takes the schedules the
per-target database (:mod:`tuner.backends.tvm.database`) already holds, and tunes only
the tasks it lacks, each with its share of the trial budget.

Search: from ``EVOLUTIONARY_MIN_PER_TASK`` trials per task, MetaSchedule's evolutionary
search, guided by its XGBoost cost model when ``xgboost`` is importable (a random one
otherwise); below it, and as the fallback, random sampling. The evolutionary mutators
copy IR modules through JSON, and apache-tvm-ffi 0.1.15 segfaults serializing any IR node
that holds a dtype (``ToJSONGraph``; 0.1.14 does not). So the evolutionary search runs in
a child process, after a cheaper child checked that serialization works; when it does not,
or the search crashes or raises, the build tunes by random sampling of the design space
(``replay-func``, no mutators), which serializes nothing, and records why
(``tuning_fallback``).
Candidates are built in-process into an in-memory database: TVM's LocalBuilder pickles
each module into a fresh pool per batch whose workers spend 20-45 s importing
``tvm.s_tir.tensor_intrin`` here.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
from typing import Any

from tuner.backends.tvm.database import TuningDatabase, canonical_target
from tuner.backends.tvm.frontend import ERROR_CHARS, import_onnx, short_error
from tuner.errors import TrialFailed

# Caps the candidates measured per round, so a large budget still revisits every task.
_TRIALS_PER_ITER = 16
EVOLUTIONARY, REPLAY_FUNC = "evolutionary", "replay-func"
# Schedules sampled and scored per evolutionary round (TVM's default is 512); two cores
# spend seconds per round on each task at the default.
_POPULATION = 256
_PROBE_TIMEOUT_S = 120.0
# Below this share of the budget per task, random sampling found kernels as fast as the
# evolutionary search with XGBoost, in a third of the time (the encoder, 4 and 17 trials
# per task); its cost model has too few measurements to learn from.
EVOLUTIONARY_MIN_PER_TASK = 32
_CHILD_ERROR = "podium-tuning-error: "


def tuned_database(mod: Any, target: Any, trials: int, *, threads: int,
                    child: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Schedules for every fused kernel: from the tuning database, tuning only what it lacks.

    A task is reused when the database holds a record of this exact target tuned with at
    least ``trials`` trials; the others are tuned with their share of the budget and stored.
    ``child`` is what a child process needs to extract the same tasks (:func:`tune_child`).
    """
    tasks = _tasks(mod, target)
    if not tasks:
        return None, {"tuning_tasks": 0, "tuned_tasks": 0, "tuning_records": 0}
    store = TuningDatabase(canonical_target(target))
    database, missing = store.load(tasks, budget=trials)
    search: dict[str, Any] = {}
    per_task = max(1, trials // len(tasks))
    if missing and per_task < EVOLUTIONARY_MIN_PER_TASK:
        search = {"tuning_fallback": f"{per_task} trials per task: evolutionary search pays "
                                     f"off from {EVOLUTIONARY_MIN_PER_TASK}"}
    elif missing:
        search = _evolutionary(child | {"trials": trials, "threads": threads})
    if missing:
        database, left = store.load(tasks, budget=trials)
        if left:  # all of them if the evolutionary search failed, else those it found nothing for
            store.add_tuned(_tune(left, target, per_task, threads=threads, strategy=REPLAY_FUNC,
                                  cost_model="random"), left, budget=trials)
            database, _ = store.load(tasks, budget=trials)
            search["tuning_search"] = "+".join(
                filter(None, [search.get("tuning_search"), f"{REPLAY_FUNC}+random"]))
    return database, {"tuning_tasks": len(tasks), "tuned_tasks": len(missing),
                      "tuning_records": len(database), "tuning_database": str(store.folder),
                      **search}


def _tasks(mod: Any, target: Any) -> list[Any]:
    from tvm.s_tir import meta_schedule as ms

    return list(ms.relax_integration.extract_tasks(_fused(mod, target), target))


def _evolutionary(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the evolutionary search in a child process that stores what it finds.

    A child, because the search crashes the process where tvm-ffi cannot serialize IR, and
    because one crash must cost the build its better search, not the build itself. Returns
    the search that ran, and why it did not (``tuning_fallback``) if it did not.
    """
    if not _serialization_works():
        return {"tuning_fallback": "tvm-ffi cannot serialize IR here (the ToJSONGraph crash)"}
    cost_model = "xgb" if _has_xgboost() else "random"
    code = "from tuner.backends.tvm.tuning import child_main; child_main()"
    result = subprocess.run([sys.executable, "-c", code, json.dumps(spec | {
        "cost_model": cost_model})], capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return {"tuning_search": f"{EVOLUTIONARY}+{cost_model}", "tuning_fallback": None}
    if result.returncode < 0:
        why = f"died of {signal.Signals(-result.returncode).name}"
    else:
        errors = [line.removeprefix(_CHILD_ERROR) for line in result.stderr.splitlines()
                  if line.startswith(_CHILD_ERROR)]
        why = f"failed: {errors[-1] if errors else f'exit status {result.returncode}'}"
    return {"tuning_fallback": f"evolutionary search {why}"[:ERROR_CHARS]}


def child_main() -> None:
    """Entry point of the child: the spec is ``sys.argv[1]``; an error is one marked line."""
    try:
        tune_child(json.loads(sys.argv[1]))
    except Exception as exc:
        print(f"{_CHILD_ERROR}{short_error(exc)}", file=sys.stderr)
        sys.exit(1)


def tune_child(spec: dict[str, Any]) -> None:
    """The child of :func:`_evolutionary`: import, extract the tasks, tune what is missing.

    Tasks come out of the same ONNX file through the same passes, so they have the
    structural hashes the parent looks up; records reach it through the tuning database.
    """
    import onnx
    import tvm


    target = tvm.target.Target(spec["target"])
    mod, _ = import_onnx(onnx.load(spec["model"]), spec["inputs"])
    tasks = _tasks(mod, target)
    store = TuningDatabase(canonical_target(target))
    _, missing = store.load(tasks, budget=spec["trials"])
    if missing:
        per_task = max(1, spec["trials"] // len(tasks))
        records = _tune(missing, target, per_task, threads=spec["threads"],
                        strategy=EVOLUTIONARY, cost_model=spec["cost_model"])
        store.add_tuned(records, missing, budget=spec["trials"])


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
        raise TrialFailed(f"TVM MetaSchedule {strategy} tuning failed: {short_error(exc)}",
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
                    results.append(BuilderResult(None, short_error(exc)))
            return results

    return InProcessBuilder()


def lowering_passes(target: Any) -> list[Any]:
    """Legalize and fuse: tuning tasks are extracted after these, and records applied.

    The CPU pipeline's own module, because ``tvm.relax.pipeline``'s per-target dispatchers
    reach for ``cpu_generic.dataflow_lower_passes``, which that package does not export.
    """
    from tvm.relax.backend.cpu_generic import pipeline

    return [*pipeline.library_dispatch_passes(target), *pipeline.legalize_passes(target)]


def _fused(mod: Any, target: Any) -> Any:
    import tvm

    with target:
        return tvm.transform.Sequential(lowering_passes(target))(mod)


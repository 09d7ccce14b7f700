"""Worker process entry: ``python -m tuner.trial.worker SPEC.json OUT.json``.

Builds and measurements run here, one per fresh process, so that (MEASUREMENT.md rule 2)
a measuring process never built anything, a crash inside a native library (TVM, ORT)
becomes a failed trial instead of a dead engine, and the process can be pinned to the
cores it reserved. The parent (:mod:`tuner.trial.subprocess_runner`) reads ``OUT.json``: either
the task's result or ``{"error": {"message", "stage"}}``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

from tuner.errors import PodiumError, TrialFailed, one_line


def build_task(spec: dict[str, Any]) -> dict[str, Any]:
    """Transform + compile one artifact into ``spec["out_dir"]``."""
    from tuner.backends import get_backend
    from tuner.transforms import apply_transforms
    from tuner.transforms.sensitivity import Probe
    from tuner.trial.config import Configuration
    from workloads.registry import open_root

    start = time.perf_counter()
    config = Configuration.model_validate(spec["config"]).normalized()
    workload = open_root(Path(spec["workload_root"]))
    calibration = workload.calib_inputs
    out_dir = Path(spec["out_dir"])
    backend = get_backend(config.backend)
    probe = Probe.from_rows(workload.eval_inputs, workload.output_index, layout=workload.layout,
                            metric=workload.metric.value)
    held_out = {"held_out": probe} if backend.uses_held_out else {}
    with tempfile.TemporaryDirectory() as tmp:
        transformed = Path(tmp) / "transformed.onnx"
        details = apply_transforms(workload.model_path(config.variant), config, transformed,
                                   calibration=calibration, layout=workload.layout,
                                   probe=probe, convert_precision=backend.precision_in_onnx)
        artifact = backend.build(
            transformed, config, out_dir, calibration=calibration,
            example=workload.example_feed(config.batch), feed=workload.layout.feed,
            hardware=spec["hardware"], **held_out)
    artifact.details = details | artifact.details
    artifact.build_s = time.perf_counter() - start
    artifact.save()
    return {"build_s": artifact.build_s}


def measure_task(spec: dict[str, Any]) -> dict[str, Any]:
    """Load one artifact and run the protocol plus the quality evaluation."""
    from tuner.backends import Artifact, get_backend
    from tuner.trial import quality_cache
    from tuner.trial.bundle import load_bundle, output_sample
    from tuner.trial.config import Configuration
    from tuner.trial.measure import (
        Protocol,
        capped,
        check_finite,
        front_abort_line,
        measure_session,
        screen,
        within,
    )
    from workloads.quality import quality_of
    from workloads.reference import run_in_batches
    from workloads.registry import open_root

    config = Configuration.model_validate(spec["config"]).normalized()
    workload = open_root(Path(spec["workload_root"]))
    protocol = Protocol(**spec["protocol"])
    start = time.perf_counter()
    artifact = None
    if spec.get("bundle_dir"):  # an exported bundle, opened the way its predict.py does
        model = load_bundle(Path(spec["bundle_dir"]), threads=spec["threads"])
        session, scored_run = model.session, model.run
    else:
        artifact = Artifact.load(Path(spec["artifact_dir"]))
        session = get_backend(config.backend).load(artifact, config, threads=spec["threads"])
        scored_run = session.run
    load_s = time.perf_counter() - start
    example = workload.example_feed(config.batch)
    sample = output_sample(session.run(example))
    call_s = _call_seconds(session.run, example)
    artifact_dir = artifact.path if artifact is not None else None
    stats = (quality_cache.read(artifact_dir, workload.sha256)
             if protocol.reuse_quality and artifact_dir is not None else None)
    screened = None
    stop = capped(call_s, 0 if stats is not None else -(-workload.n_eval // config.batch),
                  protocol, time.perf_counter() - start)
    if stop is not None:  # too slow for the measurement budget: neither scored nor timed
        stats = (stats or {"quality": None}) | {"capped": stop}
    if stats is None and protocol.abort_p50_ms is not None:
        # The abort line is known before quality: a candidate far behind the incumbent is
        # pruned by its probe before the evaluation set is run through it (scoring a slow
        # artifact costs more than its probe and its build together).
        screened = screen(session.run, example, protocol)
        if "pruned" in screened:
            stats = {"quality": None} | screened
    if stats is None:
        outputs = run_in_batches(workload.layout.wrap(scored_run), workload.eval_inputs,
                                 config.batch, pad=True)
        check_finite(outputs)
        stats = quality_of(workload, outputs)
        if artifact_dir is not None:
            quality_cache.write(artifact_dir, workload.sha256, stats)
    reference = workload.reference_quality
    ratio = (stats["quality"] / reference
             if reference > 0 and stats["quality"] is not None else None)
    below_floor = (protocol.quality_floor is not None and ratio is not None
                   and ratio < protocol.quality_floor)
    if below_floor:
        stats["timed"] = False  # quality decides the trial: timing it would tell nothing
    elif "pruned" not in stats and "capped" not in stats:
        line = front_abort_line(protocol, {
            "quality": stats["quality"], "quality_ratio": ratio,
            "model_size_bytes": artifact.model_size_bytes if artifact is not None else None})
        if line is not None and (protocol.abort_p50_ms is None or line < protocol.abort_p50_ms):
            protocol = replace(protocol, abort_p50_ms=line)
        elif screened is not None:  # this line's probe passed already
            protocol = replace(protocol, abort_p50_ms=None)
        protocol = within(protocol, time.perf_counter() - start, call_s)
        stats |= measure_session(session.run, example, config.batch, protocol)
    stats["load_s"] = load_s
    stats["output_sample"] = sample
    stats["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    stats["cpus"] = sorted(os.sched_getaffinity(0))
    if getattr(session, "details", None):  # what really ran (OpenVINO: its precision, threads)
        stats["session"] = session.details
    session.close()
    return stats


def _call_seconds(run: Any, feed: Any) -> float:
    """One call's wall time: what the measurement budget is planned with (a second call,
    so the first call's one-off set-up does not count)."""
    begin = time.perf_counter()
    run(feed)
    return time.perf_counter() - begin


TASKS = {"build": build_task, "measure": measure_task}


# How native libraries report a failed allocation (ORT's arena, a C++ std::bad_alloc).
_ALLOCATION_FAILED = ("Failed to allocate memory", "bad_alloc", "bad allocation")


def _contain(spec: dict[str, Any]) -> None:
    """Cap this process's memory and make it die with the process that started it."""
    limit = spec.get("memory_limit_bytes")
    if limit:
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        capped = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (capped, hard))
    parent = spec.get("parent_pid")
    if parent and sys.platform.startswith("linux"):
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        try:
            os.kill(parent, 0)
        except ProcessLookupError:  # it died before prctl took effect
            sys.exit(1)


def _failure(exc: BaseException, stage: str) -> str:
    from tuner.trial.subprocess_runner import out_of_memory_reason

    text = one_line(exc)
    if isinstance(exc, MemoryError) or any(s in text for s in _ALLOCATION_FAILED):
        return out_of_memory_reason(stage, f"{type(exc).__name__}: {text[:200]}")
    last = traceback.extract_tb(exc.__traceback__)[-1]
    where = f" (at {Path(last.filename).name}:{last.lineno})"
    return f"{type(exc).__name__}: {text[:400]}{where}"


def main(argv: list[str]) -> int:
    spec_path, out_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text())
    _contain(spec)
    if spec.get("cpus"):
        os.sched_setaffinity(0, spec["cpus"])
    try:
        result: dict[str, Any] = TASKS[spec["task"]](spec)
    except TrialFailed as exc:
        result = {"error": {"message": one_line(exc), "stage": exc.stage}}
    except PodiumError as exc:
        result = {"error": {"message": one_line(exc), "stage": spec["task"]}}
    except Exception as exc:
        result = {"error": {"message": _failure(exc, spec["task"]), "stage": spec["task"]}}
    if "error" in result and spec["task"] == "build":
        shutil.rmtree(spec["out_dir"], ignore_errors=True)
    tmp = out_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

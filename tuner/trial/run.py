"""One trial: validate → build (cached) → measure in a fresh pinned process → TrialResult.

Bad input (:class:`InputError`) is raised before anything is built. A build or
measurement failure is not raised: it becomes a FAILED TrialResult carrying the stage
and reason, so a search records it and goes on. An unstable measurement is re-measured
once in a new process (MEASUREMENT.md rule 4) and then reported as it is.
"""

from __future__ import annotations

import os
import platform
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from tuner.backends.registry import backend_class
from tuner.errors import ConfigError, HardwareError, TrialFailed
from tuner.hardware import (
    LOCAL,
    HardwareProfile,
    cost_per_million_usd,
    energy_mj_per_inference,
    estimate_power_w,
    fingerprint,
    load_profile,
)
from tuner.trial.build import build_artifact
from tuner.trial.config import Configuration
from tuner.trial.measure import Protocol
from tuner.trial.results import (
    HardwareRef,
    Metrics,
    Stability,
    TrialResult,
    TrialState,
    WorkloadRef,
)
from tuner.trial.subprocess_runner import run_worker
from workloads.base import Workload
from workloads.batch_axes import fixed_batch
from workloads.onnx_files import file_sha256, session_io
from workloads.versions import package_versions, podium_version

NODE_PROFILES_ENV = "PODIUM_NODE_PROFILES"
DEFAULT_TIMEOUT_S = 600.0


def node_profiles() -> list[str]:
    """Hardware profiles this node runs: ``local`` plus what ``PODIUM_NODE_PROFILES`` claims."""
    extra = [p.strip() for p in os.environ.get(NODE_PROFILES_ENV, "").split(",") if p.strip()]
    return [LOCAL, *extra]


def validate(workload: Workload, config: Configuration, profile: HardwareProfile | None = None,
             *, node_check: bool = True) -> tuple[Configuration, HardwareProfile]:
    """Resolve the variant and defaults and check that ``config`` can run here.

    ``node_check=False`` skips the "does this node run that profile" test, for callers that
    were scheduled on a node advertising the profile (a Ray task asking for ``hw:<name>``).

    Raises:
        ConfigError, HardwareError, WorkloadError: with a one-line reason.
    """
    profile = profile or load_profile(config.hardware)
    variant = workload.variant(config.variant).name
    config = config.with_updates(variant=variant).normalized()
    if node_check and config.hardware not in node_profiles():
        raise HardwareError(f"hardware {config.hardware!r} is not available on this node "
                            f"(it runs {', '.join(node_profiles())}; set {NODE_PROFILES_ENV} "
                            "on a machine of that type)")
    usable = len(os.sched_getaffinity(0))
    if config.threads > min(profile.cores, usable):
        raise ConfigError(f"threads={config.threads} exceeds the cores available "
                          f"({profile.name} has {profile.cores}, this process may use {usable})")
    fixed = fixed_batch(session_io(workload.model_path(variant))[1], workload.layout)
    if fixed is not None and config.batch != fixed:
        raise ConfigError(f"variant {variant!r} has a fixed batch size of {fixed}; "
                          f"batch={config.batch} is not possible")
    backend = backend_class(config.backend)
    unsupported = backend.precision_problem(config.precision, profile.isa)
    if unsupported:
        raise HardwareError(f"{profile.name}: {unsupported}")
    backend.check_target(profile, config)
    return config, profile


def run_trial(workload: Workload, config: Configuration, *, protocol: Protocol | None = None,
              timeout_s: float = DEFAULT_TIMEOUT_S, cpus: list[int] | None = None,
              seed: int | None = None, node: str | None = None,
              node_check: bool = True) -> TrialResult:
    """Build and measure ``config`` on ``workload`` and return its TrialResult.

    Args:
        workload: the workload (``workloads.get(name)`` or ``workloads.from_files``).
        config: the configuration; its ``hardware`` must be a profile this node runs.
        protocol: measurement minimums (defaults follow MEASUREMENT.md).
        timeout_s: limit for the build and for each measurement, in seconds.
        cpus: cores to pin the measurement to (default: the first ``threads`` usable).
        seed: recorded for reproduction (the search's seed).
        node: how to name the node that ran it (default: the host name).
        node_check: see :func:`validate`.

    Raises:
        InputError: the configuration cannot run on this workload or node.
    """
    protocol = protocol or Protocol()
    config, profile = validate(workload, config, node_check=node_check)
    cpus = cpus or sorted(os.sched_getaffinity(0))[:config.threads]
    record = _record(workload, config, profile, cpus=cpus, seed=seed, node=node)
    timings: dict[str, float] = {}
    try:
        begin = time.perf_counter()
        artifact, cache_hit = build_artifact(workload, config, profile, timeout_s=timeout_s)
        timings["build_wall_s"] = time.perf_counter() - begin
        record["artifact"] = {"key": artifact.path.name, "cache_hit": cache_hit,
                              "files": artifact.files, "sha256": artifact.checksums,
                              "details": artifact.details}
        spec = {"task": "measure", "config": config.as_dict(), "artifact_dir": str(artifact.path),
                "workload_root": str(workload.root), "threads": config.threads, "cpus": cpus,
                "protocol": protocol.as_dict()}
        begin = time.perf_counter()
        stats = run_worker(spec, timeout_s=timeout_s, threads=config.threads)
        if stats.get("stability") == Stability.UNSTABLE:
            stats = run_worker(spec, timeout_s=timeout_s, threads=config.threads)
            stats["remeasured"] = True
        timings["measure_wall_s"] = time.perf_counter() - begin
    except TrialFailed as exc:
        return TrialResult(**record, state=TrialState.FAILED, error=str(exc),
                           failed_stage=exc.stage, timings=timings,
                           finished_at=datetime.now(UTC))
    measurement = {k: v for k, v in stats.items() if k not in Metrics.model_fields}
    measurement["protocol"] = protocol.as_dict()
    tune_s = float(artifact.details.get("tune_s", 0.0))
    if stats.get("timed") is False or "pruned" in stats or "capped" in stats:
        state, error, stage = _stopped(stats, workload, protocol)
        metrics = Metrics(quality=stats.get("quality"), quality_ratio=_ratio(stats, workload),
                          model_size_bytes=artifact.model_size_bytes, build_s=artifact.build_s,
                          tune_s=tune_s)
        return TrialResult(**record, state=state, error=error, failed_stage=stage,
                           metrics=metrics, measurement=measurement, timings=timings,
                           finished_at=datetime.now(UTC))
    metrics = _metrics(stats, workload, profile, config, artifact.model_size_bytes,
                       artifact.build_s, tune_s)
    return TrialResult(**record, state=TrialState.COMPLETE, metrics=metrics,
                       measurement=measurement, timings=timings, finished_at=datetime.now(UTC))


def _ratio(stats: dict[str, Any], workload: Workload) -> float | None:
    """The quality ratio; None where quality was not scored (pruned by its probe first)."""
    reference = workload.reference_quality
    quality = stats.get("quality")
    return quality / reference if reference > 0 and quality is not None else None


def _stopped(stats: dict[str, Any], workload: Workload,
             protocol: Protocol) -> tuple[TrialState, str, str]:
    """State, reason and stage of a trial a gate of ``protocol`` stopped before its timing."""
    if stats.get("timed") is False:
        return (TrialState.INFEASIBLE,
                f"quality_ratio {_ratio(stats, workload):.4g} is under the search's quality "
                f"floor {protocol.quality_floor:g}: not timed", "quality")
    if "capped" in stats:
        cap = stats["capped"]
        scoring = (f"scoring quality over {cap['scoring_calls']} calls and "
                   if cap["scoring_calls"] else "")
        return (TrialState.PRUNED,
                f"pruned: at {cap['call_ms']:.4g} ms a call, {scoring}the protocol's minimum "
                f"timing need {cap['least_s']:.0f} s, past what is left of the "
                f"{cap['max_measure_s']:g} s measurement budget: not measured", "measure")
    pruned = stats["pruned"]
    whose = ("a front point as good on the other objectives" if protocol.abort_front
             else "the incumbent")
    return (TrialState.PRUNED,
            f"pruned: probe p50 {pruned['probe_p50_ms']:.4g} ms over {pruned['probe_calls']} "
            f"calls is above the abort line {pruned['abort_p50_ms']:.4g} ms (a multiple of "
            f"the p90 of {whose}): timing stopped", "measure")


def _record(workload: Workload, config: Configuration, profile: HardwareProfile, *,
            cpus: list[int], seed: int | None, node: str | None) -> dict[str, Any]:
    """The identity part of a TrialResult: what ran, on what, with which software."""
    return {
        "podium_version": podium_version(), "trial_id": uuid.uuid4().hex,
        "workload": WorkloadRef(name=workload.name, sha256=workload.sha256,
                                variant=config.variant,
                                variant_sha256=file_sha256(workload.model_path(config.variant)),
                                metric=str(workload.metric),
                                reference_quality=workload.reference_quality,
                                fingerprint=_fingerprint(workload)),
        "config": config.as_dict(), "config_digest": config.digest(),
        "hardware": HardwareRef(profile=profile.name, fingerprint=fingerprint(profile),
                                node=node or platform.node(), cpus=cpus),
        "packages": packages_for(config.backend),
        "seed": seed, "started_at": datetime.now(UTC),
    }


def packages_for(backend: str) -> dict[str, str]:
    """The package versions a record of ``backend`` carries: Podium's and its own engine's
    (what a re-run compares against, so the engine is never reported missing)."""
    return package_versions() | backend_class(backend).versions()


def _fingerprint(workload: Workload) -> dict[str, Any]:
    """The workload's fingerprint (graph and output fragility), computed once per process
    and workload content: a result pulled from a leaderboard carries it into a knowledge
    store."""
    if workload.sha256 not in _FINGERPRINTS:
        from tuner.knowledge.fingerprint import workload_fingerprint

        while len(_FINGERPRINTS) >= FINGERPRINTS_KEPT:  # a long-lived `podium referee`
            del _FINGERPRINTS[next(iter(_FINGERPRINTS))]  # sees workload after workload
        _FINGERPRINTS[workload.sha256] = workload_fingerprint(workload).as_dict()
    return _FINGERPRINTS[workload.sha256]


FINGERPRINTS_KEPT = 16
_FINGERPRINTS: dict[str, dict[str, Any]] = {}  # by workload sha256, oldest first


def failed_result(workload: Workload, config: Configuration, reason: str, *,
                  stage: str, seed: int | None = None) -> TrialResult:
    """A FAILED TrialResult for a trial that died outside ``run_trial`` (e.g. its worker)."""
    config = config.with_updates(variant=workload.variant(config.variant).name).normalized()
    record = _record(workload, config, load_profile(config.hardware), cpus=[], seed=seed,
                     node=None)
    return TrialResult(**record, state=TrialState.FAILED, error=reason, failed_stage=stage,
                       finished_at=datetime.now(UTC))


def _metrics(stats: dict[str, Any], workload: Workload, profile: HardwareProfile,
             config: Configuration, model_size: int, build_s: float,
             tune_s: float) -> Metrics:
    throughput = stats["throughput_per_s"]
    power, power_source = estimate_power_w(profile, config.threads)
    cost, price_source = cost_per_million_usd(profile, throughput)
    return Metrics(
        latency_p50_ms=stats["latency_p50_ms"], latency_p90_ms=stats["latency_p90_ms"],
        latency_p99_ms=stats["latency_p99_ms"], latency_mean_ms=stats["latency_mean_ms"],
        throughput_per_s=throughput, quality=stats["quality"],
        quality_ratio=_ratio(stats, workload),
        model_size_bytes=model_size, peak_rss_bytes=stats["peak_rss_bytes"], build_s=build_s,
        tune_s=tune_s,
        power_w=power, energy_mj_per_inference=energy_mj_per_inference(power, throughput),
        cost_per_million_usd=cost, power_source=power_source, price_source=price_source,
        stability=Stability(stats["stability"]), cv=stats["cv"])

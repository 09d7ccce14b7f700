"""``podium export --verify``: does a bundle still do what its trial measured, here?

The bundle is opened the way its ``predict.py`` opens it (a measuring worker given
``bundle_dir`` loads it through :func:`tuner.trial.bundle.load_bundle`), in a fresh pinned
process per measurement (MEASUREMENT.md rules 2 and 8). Checked:

* its first call's outputs against the values the trial recorded (``output_sample``);
* its quality on the workload's evaluation rows against the trial's, which must be the same
  (same files, same runtime options: only thread scheduling may move the last bits);
* its speed, interleaved with the ONNX Runtime default (fp32, all optimizations, the same
  cores) over ``rounds`` rounds. A speed claim is a ratio measured side by side (rule 8), so
  what is judged is the bundle's p90 speed-up over the ORT default here against the one its
  search recorded (the confirmation's, else the search's baseline trial's), within the
  reproduce tolerance; only without a recorded ratio is the absolute p90 compared with the
  trial's — and then only on the CPU the trial ran on. Both figures are always shown.

With ``data`` (an npz of the user's own rows, optionally with ``labels``) quality is scored
on those rows instead, against the workload's fp32 reference model run on them: the ratio is
reported, not judged (the trial never saw those rows), and the first-call check is skipped.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner.errors import InputError, TrialFailed
from tuner.trial.bundle import INFERENCE_FILE, ExportError, find_workload, sample_mismatch
from tuner.trial.config import Configuration
from tuner.trial.measure import Protocol
from tuner.trial.results import Stability, TrialState

LATENCY_TOLERANCE = 0.10  # as ``podium reproduce``
QUALITY_TOLERANCE = 1e-6  # relative: the same artifact scores the same


@dataclass
class BundleCheck:
    folder: Path
    recorded: dict[str, Any]  # the bundle's metrics as recorded by the trial
    quality: float | None = None
    quality_ratio: float | None = None
    data: Path | None = None  # the user's rows quality was scored on, instead of the trial's
    sample_problem: str | None = None
    bundle_p90_ms: list[float] = field(default_factory=list)
    baseline_p90_ms: list[float] = field(default_factory=list)
    same_hardware: bool = True
    recorded_speedup: float | None = None  # the search's p90 ratio to the ORT default
    unstable_rounds: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def p90_ms(self) -> float | None:
        return statistics.median(self.bundle_p90_ms) if self.bundle_p90_ms else None

    @property
    def baseline_ms(self) -> float | None:
        return statistics.median(self.baseline_p90_ms) if self.baseline_p90_ms else None

    @property
    def speedup(self) -> float | None:
        if self.p90_ms and self.baseline_ms:
            return self.baseline_ms / self.p90_ms
        return None

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_bundle(folder: Path, *, rounds: int = 5, timeout_s: float = 600.0,
                  latency_tolerance: float = LATENCY_TOLERANCE, data: Path | None = None,
                  cpus: list[int] | None = None) -> BundleCheck:
    """Re-check ``folder`` here; :attr:`BundleCheck.problems` lists what is outside.
    Unstable rounds (MEASUREMENT.md: flagged, never a result) are left out of the p90."""
    from tuner.hardware.detection import local_host
    from tuner.trial.run import run_trial, validate

    folder = Path(folder)
    try:
        spec = json.loads((folder / INFERENCE_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder} is not a bundle written by podium export: {exc}") from None
    workload = find_workload(spec["workload"]["name"], spec["workload"]["sha256"])
    config = Configuration.model_validate(spec["config"]).normalized()
    config, _ = validate(workload, config)
    cpus = cpus or sorted(os.sched_getaffinity(0))[:config.threads]
    check = BundleCheck(folder=folder, recorded=spec["metrics"], data=data,
                        recorded_speedup=(spec.get("recorded_speedup") or {}).get("speedup_p90"))
    scored = workload if data is None else _on_rows(workload, data)
    check.same_hardware = (spec["hardware"]["fingerprint"].get("cpu_model")
                           == local_host().model)
    baseline = Configuration(variant=workload.reference, threads=config.threads)
    quality = []
    for index in range(rounds):
        order = ("bundle", "baseline") if index % 2 == 0 else ("baseline", "bundle")
        for what in order:
            if what == "bundle":
                stats = _measure_bundle(folder, scored, config, cpus, timeout_s)
                quality.append(stats["quality"])
                if index == 0 and data is None:
                    check.sample_problem = sample_mismatch(
                        spec["sample"]["outputs"], stats["output_sample"]) \
                        if spec["sample"].get("outputs") else None
                if stats.get("stability") == Stability.UNSTABLE:
                    check.unstable_rounds += 1
                elif stats.get("latency_p90_ms") is not None:
                    check.bundle_p90_ms.append(stats["latency_p90_ms"])
            else:
                result = run_trial(workload, baseline, cpus=cpus, timeout_s=timeout_s)
                if (result.state is TrialState.COMPLETE and result.instability() is None
                        and result.metrics.latency_p90_ms):
                    check.baseline_p90_ms.append(result.metrics.latency_p90_ms)
    check.quality = quality[0]
    if scored.reference_quality > 0:
        check.quality_ratio = check.quality / scored.reference_quality
    _judge(check, quality if data is None else [], latency_tolerance)
    return check


def _on_rows(workload: Any, data: Path) -> Any:
    """The workload's fp32 reference model with the user's rows, laid out as the workload's
    (batch axes, constants, unscored outputs)."""
    from workloads.layout import CONSTANT, UNSCORED
    from workloads.user import from_files

    layout = workload.layout
    inputs = {name: CONSTANT if axis is None else axis for name, axis in layout.inputs.items()
              if name not in layout.constants}
    outputs = dict.fromkeys(layout.unscored, UNSCORED)
    return from_files(workload.model_path(workload.reference), data,
                      name=f"{workload.name}:verify", inputs=inputs, outputs=outputs)


def _measure_bundle(folder: Path, workload: Any, config: Configuration, cpus: list[int],
                    timeout_s: float) -> dict[str, Any]:
    from tuner.trial.subprocess_runner import run_worker

    spec = {"task": "measure", "config": config.as_dict(), "bundle_dir": str(folder),
            "workload_root": str(workload.root), "threads": config.threads, "cpus": cpus,
            "protocol": Protocol().as_dict()}
    stats = run_worker(spec, timeout_s=timeout_s, threads=config.threads)
    if "error" in stats:
        raise TrialFailed(f"the bundle did not run: {stats['error']['message']}",
                          stage=stats["error"].get("stage", "measure"))
    return stats


def _judge(check: BundleCheck, quality: list[float], latency_tolerance: float) -> None:
    recorded_quality = check.recorded.get("quality")
    if check.sample_problem:
        check.problems.append(f"first call: {check.sample_problem}")
    if recorded_quality is not None:
        for value in quality:
            if abs(value - recorded_quality) > QUALITY_TOLERANCE * max(abs(recorded_quality),
                                                                        1e-12):
                check.problems.append(f"quality {value:.6g}, the trial measured "
                                      f"{recorded_quality:.6g}")
                break
    recorded_p90 = check.recorded.get("latency_p90_ms")
    if check.recorded_speedup and check.speedup:
        drift = check.speedup / check.recorded_speedup - 1
        if abs(drift) > latency_tolerance:
            check.problems.append(
                f"speed-up over the ORT default {check.speedup:.2f}× here is {drift:+.0%} off "
                f"the recorded {check.recorded_speedup:.2f}× (tolerance ±{latency_tolerance:.0%})")
    elif check.bundle_p90_ms and check.same_hardware and recorded_p90:
        drift = check.p90_ms / recorded_p90 - 1
        if abs(drift) > latency_tolerance:
            check.problems.append(f"p90 {check.p90_ms:.4g} ms is {drift:+.0%} off the trial's "
                                  f"{recorded_p90:.4g} ms (tolerance ±{latency_tolerance:.0%})")


__all__ = ["BundleCheck", "ExportError", "verify_bundle"]

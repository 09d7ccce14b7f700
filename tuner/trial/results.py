"""The TrialResult record: everything needed to judge and reproduce one trial.

The same record is printed by ``podium trial run``, stored in studies, submitted to the
leaderboard and re-run by ``podium reproduce``. Metric names and units are fixed here
(:data:`METRIC_UNITS`, :data:`METRIC_DIRECTIONS`) and nowhere else.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

# name → (unit, direction); direction is how a better value moves.
METRICS: dict[str, tuple[str, Literal["minimize", "maximize"]]] = {
    "latency_p50_ms": ("ms per call", "minimize"),
    "latency_p90_ms": ("ms per call", "minimize"),
    "latency_p99_ms": ("ms per call", "minimize"),
    "latency_mean_ms": ("ms per call", "minimize"),
    "throughput_per_s": ("samples/s", "maximize"),
    "quality": ("score in [0, 1]", "maximize"),
    "quality_ratio": ("fraction of fp32 reference", "maximize"),
    "model_size_bytes": ("bytes", "minimize"),
    "peak_rss_bytes": ("bytes", "minimize"),
    "build_s": ("s", "minimize"),
    "tune_s": ("s", "minimize"),
    "power_w": ("W", "minimize"),
    "energy_mj_per_inference": ("mJ per sample", "minimize"),
    "cost_per_million_usd": ("USD per 1M samples", "minimize"),
}
# Per-sample figures a larger batch can improve; every other metric is per call or per model.
PER_SAMPLE_METRICS = ("throughput_per_s", "energy_mj_per_inference", "cost_per_million_usd")
# Figures a measuring worker has before it times anything (the search's pruning uses them).
KNOWN_BEFORE_TIMING = ("quality", "quality_ratio", "model_size_bytes")
METRIC_UNITS = {name: unit for name, (unit, _) in METRICS.items()}
METRIC_DIRECTIONS = {name: direction for name, (_, direction) in METRICS.items()}


class Stability(StrEnum):
    STABLE = "stable"  # CV of block medians <= 5%
    NOISY = "noisy"  # <= 10%
    UNSTABLE = "unstable"  # > 10% after one re-measurement: never wins, never satisfies

    @classmethod
    def from_cv(cls, cv: float) -> Stability:
        if cv <= 0.05:
            return cls.STABLE
        return cls.NOISY if cv <= 0.10 else cls.UNSTABLE


class TrialState(StrEnum):
    COMPLETE = "complete"
    FAILED = "failed"
    # Quality measured and below the search's hard floor: the artifact was never timed.
    INFEASIBLE = "infeasible"
    # Timing stopped after a short probe far behind the incumbent: never a measured result.
    PRUNED = "pruned"

    def is_finished(self) -> bool:
        return True


class Metrics(BaseModel):
    """Measured and derived figures of one trial, with exactly the names of METRICS."""

    model_config = ConfigDict(extra="forbid")

    latency_p50_ms: float | None = None
    latency_p90_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_mean_ms: float | None = None
    throughput_per_s: float | None = None
    quality: float | None = None
    quality_ratio: float | None = None
    model_size_bytes: int | None = None
    peak_rss_bytes: int | None = None
    build_s: float | None = None
    tune_s: float | None = None  # TVM tuning time inside build_s (0: none, or all reused)
    power_w: float | None = None
    energy_mj_per_inference: float | None = None
    cost_per_million_usd: float | None = None
    power_source: str = "unavailable"
    price_source: str = "unavailable"
    stability: Stability | None = None
    cv: float | None = None


class WorkloadRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    sha256: str
    variant: str
    variant_sha256: str
    metric: str
    reference_quality: float | None = None
    # The workload's fingerprint (tuner.knowledge.fingerprint: the reference model's graph and the
    # fragility of its outputs), so that a record read back from a leaderboard can be
    # placed in the knowledge store without the model.
    fingerprint: dict[str, Any] | None = None


class HardwareRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: str
    fingerprint: dict[str, Any]
    node: str | None = None  # host that ran the measurement
    cpus: list[int] = Field(default_factory=list)  # cores the measurement was pinned to


class TrialResult(BaseModel):
    """One trial: configuration, where and on what it ran, and what it measured."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    podium_version: str
    trial_id: str
    state: TrialState
    error: str | None = None
    failed_stage: str | None = None
    workload: WorkloadRef
    config: dict[str, Any]
    config_digest: str
    hardware: HardwareRef
    packages: dict[str, str]
    metrics: Metrics = Field(default_factory=Metrics)
    artifact: dict[str, Any] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    measurement: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.state is TrialState.COMPLETE

    @property
    def quality_known(self) -> bool:
        """Its quality was measured: complete, or stopped by a gate after quality (a trial
        its probe pruned before quality has none)."""
        return (self.state in (TrialState.COMPLETE, TrialState.INFEASIBLE, TrialState.PRUNED)
                and self.metrics.quality is not None)

    @property
    def wall_s(self) -> float:
        """What this trial's build and measurement took, s (0: not recorded); what a
        progress display expects a re-run of it to take."""
        return sum(v for k, v in self.timings.items() if k.endswith("_wall_s"))

    def metric(self, name: str) -> float | None:
        value = getattr(self.metrics, name)
        return None if value is None or not math.isfinite(value) else float(value)

    def instability(self) -> str | None:
        """Why this measurement is unstable, for a message (None when it is not): the share
        of its pinned cores other processes took while it was timed, else its CV."""
        if self.metrics.stability is not Stability.UNSTABLE:
            return None
        contention = self.measurement.get("contention")
        if self.measurement.get("contended") and isinstance(contention, int | float):
            return f"other processes took {contention:.0%} of its cores while it was timed"
        cv = self.metrics.cv
        return f"CV {cv:.1%}" if cv is not None and math.isfinite(cv) else "CV unknown"

    def flat(self) -> dict[str, Any]:
        """One flat row (config columns prefixed ``config.``), for pandas and tables."""
        row: dict[str, Any] = {"trial_id": self.trial_id, "state": str(self.state),
                               "error": self.error, "workload": self.workload.name,
                               "variant": self.workload.variant,
                               "hardware": self.hardware.profile}
        row |= {f"config.{k}": v for k, v in self.config.items()}
        row |= self.metrics.model_dump(mode="json")
        return row

    def to_json(self, path: Path | None = None) -> str:
        text = self.model_dump_json(indent=2)
        if path is not None:
            path.write_text(text + "\n")
        return text

    @classmethod
    def from_json(cls, text: str) -> TrialResult:
        return cls.model_validate(json.loads(text))

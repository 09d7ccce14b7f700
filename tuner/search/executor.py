"""Run trials as Ray tasks on the hardware they target.

Every trial is one Ray task asking for ``num_cpus = threads`` and the target's resource
``{"hw:<profile>": 1}``. A node advertises each profile it *is* with one unit
(``ray start --resources '{"hw:aws-c7i.large": 1}'``; the local node gets ``hw:local``),
so a node runs one trial at a time: its measurement never shares cores, caches or memory
bandwidth with another trial (MEASUREMENT.md rule 1), and a cluster's parallelism is its
nodes. Ray does all the scheduling; a target no node advertises is refused up front.

Failure isolation: builds and measurements already run in worker subprocesses (a crash
there is a FAILED TrialResult); a Ray worker that dies or a task that hangs past its
deadline is turned into a FAILED TrialResult here, and the search goes on.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any

from tuner.errors import HardwareError
from tuner.trial.measure import Protocol
from tuner.trial.results import TrialResult
from tuner.trial.run import DEFAULT_TIMEOUT_S, node_profiles
from workloads.base import Workload

RESOURCE_PREFIX = "hw:"
# build + measurement (+ one re-measurement) each get timeout_s; then Ray-level slack.
DEADLINE_FACTOR = 3.0
DEADLINE_SLACK_S = 60.0


def resource_name(profile: str) -> str:
    return f"{RESOURCE_PREFIX}{profile}"


def workload_spec(workload: Workload) -> dict[str, Any]:
    """How a remote node finds the workload: built-ins by name, user ones by folder."""
    return {"name": workload.name, "source": workload.source, "root": str(workload.root),
            "sha256": workload.sha256}


def open_workload(spec: dict[str, Any]) -> Workload:
    from pathlib import Path

    import workloads
    from tuner.errors import WorkloadError
    from workloads.registry import open_root

    if spec["source"] == "builtin":
        workload = workloads.get(spec["name"])
    elif Path(spec["root"]).is_dir():
        workload = open_root(Path(spec["root"]))
    else:
        raise WorkloadError(f"user workload folder {spec['root']} is not on this node "
                            "(share PODIUM_HOME between the nodes of a cluster)")
    if workload.sha256 != spec["sha256"]:
        raise WorkloadError(f"workload {spec['name']} on this node has sha256 "
                            f"{workload.sha256[:12]}, the driver's has {spec['sha256'][:12]}")
    return workload


def _trial_task(spec: dict[str, Any], config: dict[str, Any], protocol: dict[str, Any],
                timeout_s: float, seed: int | None) -> str:
    """The Ray task body: one full trial on the node Ray chose; returns the record JSON."""
    import platform

    import ray

    from tuner.trial.config import Configuration
    from tuner.trial.run import run_trial

    node_id = ray.get_runtime_context().get_node_id()
    result = run_trial(open_workload(spec), Configuration.model_validate(config),
                       protocol=Protocol(**protocol), timeout_s=timeout_s, seed=seed,
                       node=f"{platform.node()}/{node_id[:12]}", node_check=False)
    return result.to_json()


@dataclass
class Running:
    """A submitted trial: its Optuna trial, configuration, and when it must be done."""

    key: Any
    config: Any
    submitted: float
    deadline: float
    ref: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class Executor(ABC):
    """Where trials run. One driver thread calls it; not thread-safe.

    ``submit`` starts a trial and returns at once; ``wait`` returns the trials that have
    finished since, each with its TrialResult or, when the trial died without one, the
    reason. ``running`` maps a handle to every trial in flight. ``targets`` says which
    hardware profiles can run trials and on how many nodes each.
    """

    running: dict[Any, Running]
    # False where a second submission of a configuration cannot measure it afresh (a
    # replayed table): confirmation needs fresh measurements.
    remeasures: bool = True

    def start(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources (connect to a cluster)."""

    def stop(self) -> None:  # noqa: B027 - optional hook
        """Release resources; cancel what is still running."""

    @abstractmethod
    def targets(self) -> dict[str, int]:
        """Hardware profile → number of nodes that advertise it."""

    @abstractmethod
    def max_cpus(self, profile: str) -> int:
        """The most CPUs one node of ``profile`` offers (caps ``threads``)."""

    @abstractmethod
    def submit(self, key: Any, workload: Workload, config: Any, *,
               seed: int | None = None, gates: dict[str, Any] | None = None) -> None:
        """Start one trial; ``key`` comes back in the matching ``Running``. ``gates``
        override :class:`~tuner.trial.measure.Protocol` fields for it (``quality_floor``,
        ``abort_p50_ms``)."""

    @abstractmethod
    def wait(self, timeout_s: float = 1.0) -> list[tuple[Running, TrialResult | str]]:
        """Trials finished since the last call (waiting up to ``timeout_s`` for one)."""

    def require(self, profiles: list[str]) -> None:
        """Refuse profiles no node advertises, naming what the cluster has."""
        have = self.targets()
        missing = [p for p in profiles if p not in have]
        if missing:
            raise HardwareError(f"no Ray node advertises {', '.join(map(resource_name, missing))}"
                                f" (the cluster has: {', '.join(sorted(have)) or 'none'}); "
                                "start nodes with ray start --resources "
                                "'{\"hw:<profile>\": 1}'")


class RayExecutor(Executor):
    """Submits trials to Ray and collects finished ones."""

    def __init__(self, *, address: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 protocol: Protocol | None = None) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.protocol = protocol or Protocol()
        self.running: dict[Any, Running] = {}
        self._started_here = False
        self._remote: Any = None

    def start(self) -> None:
        """Join ``address`` or start a local Ray advertising this node's profiles."""
        import ray

        if not ray.is_initialized():
            if self.address is None:
                cores = len(os.sched_getaffinity(0))
                ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False,
                         configure_logging=False,
                         resources={resource_name(p): 1 for p in node_profiles()})
            else:
                ray.init(address=self.address, log_to_driver=False, configure_logging=False)
            self._started_here = True
        self._remote = ray.remote(max_retries=0)(_trial_task)

    def stop(self) -> None:
        import ray

        for running in self.running.values():
            ray.cancel(running.ref, force=True)
        self.running.clear()
        if self._started_here:
            ray.shutdown()
            self._started_here = False

    def targets(self) -> dict[str, int]:
        """Hardware profiles the cluster advertises → how many nodes advertise each."""
        import ray

        counts: dict[str, int] = {}
        for node in ray.nodes():
            if not node.get("Alive"):
                continue
            for name in node.get("Resources", {}):
                if name.startswith(RESOURCE_PREFIX):
                    profile = name.removeprefix(RESOURCE_PREFIX)
                    counts[profile] = counts.get(profile, 0) + 1
        return counts

    def max_cpus(self, profile: str) -> int:
        """The most CPUs one node advertising ``profile`` has (caps ``threads``)."""
        import ray

        return max((int(n["Resources"].get("CPU", 0)) for n in ray.nodes()
                    if n.get("Alive") and resource_name(profile) in n.get("Resources", {})),
                   default=0)

    def submit(self, key: Any, workload: Workload, config: Any, *,
               seed: int | None = None, gates: dict[str, Any] | None = None) -> None:
        options = {"num_cpus": config.threads, "resources": {resource_name(config.hardware): 1}}
        protocol = replace(self.protocol, **(gates or {}))
        ref = self._remote.options(**options).remote(
            workload_spec(workload), config.as_dict(), protocol.as_dict(), self.timeout_s, seed)
        now = time.monotonic()
        deadline = now + self.timeout_s * DEADLINE_FACTOR + DEADLINE_SLACK_S
        self.running[ref] = Running(key=key, config=config, submitted=now, deadline=deadline,
                                    ref=ref)

    def wait(self, timeout_s: float = 1.0) -> list[tuple[Running, TrialResult | str]]:
        """Finished trials: (running, TrialResult) or (running, failure reason)."""
        import ray

        done: list[tuple[Running, TrialResult | str]] = []
        if not self.running:
            return done
        ready, _ = ray.wait(list(self.running), num_returns=len(self.running),
                            timeout=timeout_s)
        for ref in ready:
            running = self.running.pop(ref)
            try:
                done.append((running, TrialResult.from_json(ray.get(ref))))
            except Exception as exc:  # the task or its worker died; record why
                done.append((running, _reason(exc)))
        now = time.monotonic()
        for ref, running in list(self.running.items()):
            if now > running.deadline:
                ray.cancel(ref, force=True)
                self.running.pop(ref)
                done.append((running, f"trial passed its deadline of "
                                      f"{running.deadline - running.submitted:.0f} s and was "
                                      "cancelled"))
        return done


def _reason(exc: BaseException) -> str:
    from tuner.errors import PodiumError, one_line

    cause = getattr(exc, "cause", None)
    if isinstance(cause, PodiumError):
        return one_line(cause)
    if isinstance(cause, Exception):  # the task's own error, not Ray's traceback around it
        return f"{type(cause).__name__} in the trial task: {one_line(cause)[:300]}"
    text = one_line(exc)
    return f"{type(exc).__name__}: {text[:300]}"

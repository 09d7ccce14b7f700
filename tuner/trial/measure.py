"""The measurement protocol of MEASUREMENT.md, run inside a fresh, pinned worker process.

Order within one process: score quality on the evaluation set, warm up (≥ 20 calls and
≥ 0.5 s), time single calls for latency (≥ 662 calls and ≥ 1 s, so p99 is supported;
SingleStream), then run back-to-back batches for throughput (≥ 1 s in ≥ 10 blocks;
Offline), all with the same session. Latencies are integer nanoseconds until the end. On a
p90 search, a candidate whose p90 at the p90 minimum (≥ 64 calls and ≥ 1 s) is behind the
incumbent by a margin (``behind_p90_ms``) stops timing there, its p99 and throughput
unreported.

Two gates a search sets per trial spare it timings whose fate is known
(:class:`Protocol`): ``quality_floor`` (a quality ratio under the hard constraint ends the
trial before any timing: quality depends on the artifact, never on its speed) and
``abort_p50_ms`` (after warm-up, ``probe_calls`` timed calls; a probe p50 above it ends the
timing, ``pruned``: the search's incumbent is that many times faster). With
``reuse_quality`` an artifact's quality, once scored on the workload, is read back rather
than scored again by every trial that runs the same artifact with other threads or session
options (rule 5: it is computed from the same artifact that is timed).

Stability: the latency samples are cut into ``blocks`` contiguous blocks; the CV of the
block medians decides ``stable`` (≤ 5%), ``noisy`` (≤ 10%) or ``unstable``.

Own cores: the CV cannot see a steady intruder. Another process busy on one of the two
cores a 2-thread trial was pinned to halves its speed for the whole run, every block alike
(a leave-one-out grid measured while another job ran had 2-thread int8 timings equal to the
1-thread ones, most of them ``stable``). So the timed part also counts the CPU time that *other*
processes (and the hypervisor, as steal) took on the pinned cores (:class:`CoreUsage`); over
``CONTENDED`` of them, the measurement is ``unstable`` whatever its CV, and says so
(``contended``), so that it is re-measured once and otherwise never reported as a result.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from tuner.errors import TrialFailed
from tuner.trial.results import Stability

Run = Callable[[dict[str, np.ndarray]], list[np.ndarray]]

# Share of the pinned cores' time other processes may take while timing. Measured here: a
# quiet run ~0.01; a busy loop on one core of a 2-thread trial 0.31 (and 2x its latency); a
# nice-19 loop on a 1-thread trial's core 0.02 (the scheduler keeps it off, latency as quiet).
CONTENDED = 0.10


@dataclass(frozen=True)
class Protocol:
    """Minimums of the protocol; ``max_latency_s`` bounds very slow artifacts.

    When ``max_latency_s`` runs out before ``p99_calls`` calls, p99 is not reported
    (LoadGen's early-stopping minimum is not met) rather than reported from too few calls.
    """

    warmup_calls: int = 20
    warmup_s: float = 0.5
    p90_calls: int = 64
    p99_calls: int = 662
    latency_s: float = 1.0
    max_latency_s: float = 60.0
    throughput_s: float = 1.0
    blocks: int = 10
    quality_floor: float | None = None
    abort_p50_ms: float | None = None
    probe_calls: int = 32
    # Read the artifact's quality on this workload back from the quality cache when a trial
    # already scored it (:mod:`tuner.trial.quality_cache`); a search and its confirmation
    # set it, ``reproduce`` and ``export --verify`` never do.
    reuse_quality: bool = False
    # A multi-objective latency search's gate: its front (each point's p90 and its values on
    # the objectives known before timing) and the margin. A candidate whose quality puts it
    # no better than some point on those objectives is pruned when its probe p50 is above
    # ``abort_factor`` × that point's p90 (see :func:`front_abort_line`).
    abort_front: tuple[dict[str, float], ...] | None = None
    abort_factor: float | None = None
    # Wall budget of one measurement, from loading the artifact on (None: uncapped). A
    # candidate whose least protocol time (:func:`least_seconds`) at its own call time does
    # not fit is stopped before quality (``capped``); the latency timing ends at the budget,
    # so p99 goes unreported where its 662 calls do not fit. A search sets it (issue 24: no
    # trial measures for more than a minute unless the user's budget asks for it).
    max_measure_s: float | None = None
    # A single-objective p90 search's line for a full timing: a candidate whose p90 over the
    # p90 minimum (``p90_calls`` and ``latency_s``) is above it cannot be the best, so its
    # timing ends there and its throughput blocks are skipped; p99 and throughput go
    # unreported (they are spent only on candidates that may win). None: the full timing.
    behind_p90_ms: float | None = None
    # False: the latency timing ends at the p90 minimum, p99 unreported (a confirmation
    # round of a p90 search compares p90 only).
    time_p99: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def warm_up(run: Run, feed: dict[str, np.ndarray], protocol: Protocol) -> int:
    calls, start = 0, time.perf_counter()
    while calls < protocol.warmup_calls or time.perf_counter() - start < protocol.warmup_s:
        run(feed)
        calls += 1
    return calls


def time_calls(run: Run, feed: dict[str, np.ndarray],
               protocol: Protocol) -> tuple[np.ndarray, bool]:
    """Latency of single calls in ns, until the call and time minimums are both met; and
    whether the timing ended at the p90 minimum behind ``behind_p90_ms``."""
    samples: list[int] = []
    clock = time.perf_counter_ns
    start = clock()
    min_ns, max_ns = int(protocol.latency_s * 1e9), int(protocol.max_latency_s * 1e9)
    line_ns = protocol.behind_p90_ms * 1e6 if protocol.behind_p90_ms is not None else None
    enough = protocol.p99_calls if protocol.time_p99 else protocol.p90_calls
    while True:
        before = clock()
        run(feed)
        after = clock()
        samples.append(after - before)
        elapsed = after - start
        if len(samples) >= enough and elapsed >= min_ns:
            break
        if elapsed >= max_ns and len(samples) >= protocol.blocks:
            break
        if (line_ns is not None and len(samples) >= protocol.p90_calls and elapsed >= min_ns):
            if np.percentile(samples, 90) > line_ns:
                return np.asarray(samples, dtype=np.int64), True  # p99 is not worth 662 calls
            line_ns = None  # within reach of the best: the full timing
    return np.asarray(samples, dtype=np.int64), False


def latency_stats(samples_ns: np.ndarray, protocol: Protocol) -> dict[str, Any]:
    ms = samples_ns / 1e6
    n = len(ms)
    medians = np.array([np.median(b) for b in np.array_split(ms, protocol.blocks)])
    cv = float(np.std(medians) / np.mean(medians)) if np.mean(medians) > 0 else 0.0
    return {
        "calls": n,
        "latency_p50_ms": float(np.percentile(ms, 50)),
        "latency_p90_ms": float(np.percentile(ms, 90)) if n >= protocol.p90_calls else None,
        "latency_p99_ms": float(np.percentile(ms, 99)) if n >= protocol.p99_calls else None,
        "latency_mean_ms": float(np.mean(ms)),
        "cv": cv,
        "stability": str(Stability.from_cv(cv)),
        "block_medians_ms": [float(m) for m in medians],
    }


def offline_throughput(run: Run, feed: dict[str, np.ndarray], batch: int,
                       protocol: Protocol) -> dict[str, Any]:
    """Samples per second over back-to-back batches, in ``blocks`` timed blocks."""
    block_s = protocol.throughput_s / protocol.blocks
    rates, total_samples, total_s = [], 0, 0.0
    for _ in range(protocol.blocks):
        calls, start = 0, time.perf_counter()
        while True:
            run(feed)
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= block_s:
                break
        rates.append(calls * batch / elapsed)
        total_samples += calls * batch
        total_s += elapsed
    return {"throughput_per_s": total_samples / total_s,
            "throughput_blocks_per_s": [float(r) for r in rates]}


def check_finite(outputs: list[np.ndarray]) -> None:
    for index, out in enumerate(outputs):
        if np.issubdtype(out.dtype, np.floating) and not np.all(np.isfinite(out)):
            raise TrialFailed(f"output {index} contains NaN or Inf", stage="measure")


class CoreUsage:
    """CPU time other processes take on this process's cores, from now until :meth:`share`.

    The cores' busy time (psutil's per-core counters, steal included) minus this process's
    own CPU time, as a share of the cores' wall time. Both counters tick in clock ticks, so
    a margin of one tick per counter read is forgiven. None where the platform has no
    per-core counters or affinity (then nothing is claimed).
    """

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        try:
            self.cpus = sorted(os.sched_getaffinity(0))
            self._start = self._read()
        except (AttributeError, OSError, IndexError):
            self.cpus = []

    def _read(self) -> tuple[float, float, float]:
        import psutil

        per_core = psutil.cpu_times(percpu=True)
        busy = sum(_busy(per_core[cpu]) for cpu in self.cpus)
        own = self._process.cpu_times()
        return time.perf_counter(), busy, own.user + own.system

    def share(self) -> float | None:
        if not self.cpus:
            return None
        end = self._read()
        wall, busy, own = (b - a for a, b in zip(self._start, end, strict=True))
        tick = 1.0 / os.sysconf("SC_CLK_TCK")  # cpus is only set where affinity exists
        others = max(0.0, busy - own - (2 * len(self.cpus) + 2) * tick)
        return others / (wall * len(self.cpus)) if wall > 0 else None


def _busy(times: Any) -> float:
    """Busy seconds of one core: everything but idle and I/O wait (guest time is already
    inside user time, so it is not added twice)."""
    idle = sum(getattr(times, name, 0.0) for name in ("idle", "iowait", "guest", "guest_nice"))
    return sum(times) - idle


def probe(run: Run, feed: dict[str, np.ndarray], protocol: Protocol) -> dict[str, Any] | None:
    """The abort gate: ``probe_calls`` timed calls; their figures if the p50 is above
    ``abort_p50_ms`` (then timing stops), else None."""
    if protocol.abort_p50_ms is None:
        return None
    clock = time.perf_counter_ns
    samples = []
    for _ in range(protocol.probe_calls):
        before = clock()
        run(feed)
        samples.append(clock() - before)
    p50 = float(np.median(samples)) / 1e6
    if p50 <= protocol.abort_p50_ms:
        return None
    return {"probe_calls": len(samples), "probe_p50_ms": p50,
            "abort_p50_ms": protocol.abort_p50_ms}


def least_seconds(call_s: float, scoring_calls: int, protocol: Protocol) -> float:
    """The least time the protocol takes at ``call_s`` a call: ``scoring_calls`` calls to
    score quality, the warm-up, the p90 minimum of timed calls and the throughput blocks
    (each its call minimum or its time minimum, whichever is longer)."""
    return (scoring_calls * call_s
            + max(protocol.warmup_calls * call_s, protocol.warmup_s)
            + max(protocol.p90_calls * call_s, protocol.latency_s)
            + max(protocol.blocks * call_s, protocol.throughput_s))


def capped(call_s: float, scoring_calls: int, protocol: Protocol,
           spent_s: float) -> dict[str, Any] | None:
    """The cap gate: the figures that stop a measurement whose least time
    (:func:`least_seconds`) does not fit what ``max_measure_s`` leaves after ``spent_s``;
    None when it fits or there is no cap."""
    if protocol.max_measure_s is None:
        return None
    need = least_seconds(call_s, scoring_calls, protocol)
    if spent_s + need <= protocol.max_measure_s:
        return None
    return {"call_ms": call_s * 1e3, "scoring_calls": scoring_calls, "least_s": need,
            "spent_s": spent_s, "max_measure_s": protocol.max_measure_s}


def within(protocol: Protocol, spent_s: float, call_s: float) -> Protocol:
    """``protocol`` with its latency timing ended where the measurement budget runs out
    after ``spent_s``, keeping time for the warm-up before it and the throughput blocks
    after it (never under the p90 time minimum, which :func:`capped` made sure fits)."""
    if protocol.max_measure_s is None:
        return protocol
    left = (protocol.max_measure_s - spent_s
            - max(protocol.warmup_calls * call_s, protocol.warmup_s)
            - max(protocol.blocks * call_s, protocol.throughput_s))
    return replace(protocol, max_latency_s=min(protocol.max_latency_s,
                                               max(protocol.latency_s, left)))


def front_abort_line(protocol: Protocol, known: dict[str, float | None]) -> float | None:
    """The abort line a front sets for a candidate whose pre-timing figures are ``known``:
    ``abort_factor`` × the lowest p90 among the front's points that are at least as good on
    every other objective (so a candidate slower than that is dominated with margin); None
    when no point is, or the gate is off."""
    from tuner.trial.results import METRIC_DIRECTIONS

    if not protocol.abort_front or not protocol.abort_factor:
        return None
    lines = []
    for point in protocol.abort_front:
        others = {k: v for k, v in point.items() if k != "latency_p90_ms"}
        if all(known.get(k) is not None and v is not None
               and (v >= known[k] if METRIC_DIRECTIONS[k] == "maximize" else v <= known[k])
               for k, v in others.items()):
            lines.append(protocol.abort_factor * point["latency_p90_ms"])
    return min(lines) if lines else None


def screen(run: Run, feed: dict[str, np.ndarray], protocol: Protocol) -> dict[str, Any]:
    """Warm up and probe only: ``{"pruned": …, "warmup_calls"}`` when the probe is above the
    abort line, else ``{"warmup_calls"}`` (the session is warm for what follows)."""
    check_finite(run(feed))
    warmup = warm_up(run, feed, protocol)
    stopped = probe(run, feed, protocol)
    return {"warmup_calls": warmup} | ({"pruned": stopped} if stopped is not None else {})


def measure_session(run: Run, feed: dict[str, np.ndarray], batch: int,
                    protocol: Protocol) -> dict[str, Any]:
    """Run the timing part of the protocol on one loaded session; ``{"pruned": …}`` when
    the probe says the artifact is far behind (see :func:`probe`)."""
    screened = screen(run, feed, protocol)
    if "pruned" in screened:
        return screened
    warmup = screened["warmup_calls"]
    usage = CoreUsage()
    samples, behind = time_calls(run, feed, protocol)
    stats = latency_stats(samples, protocol)
    if behind:  # neither p99 nor throughput can make it the best of a p90 search
        stats["behind"] = {"calls": stats["calls"], "behind_p90_ms": protocol.behind_p90_ms}
        stats["throughput_per_s"] = None
    else:
        stats |= offline_throughput(run, feed, batch, protocol)
    stats["warmup_calls"] = warmup
    contention = usage.share()
    stats["contention"] = contention
    if contention is not None and contention > CONTENDED:
        stats["stability"] = str(Stability.UNSTABLE)
        stats["contended"] = True
    return stats

"""The search loop: ask → submit → collect → tell, keeping every node busy.

:class:`SearchLoop` drives one study: it measures the baseline first, enqueues re-runs of
interrupted trials and the strong defaults, takes the warm start's transfer plan one pick
at a time (:func:`tuner.knowledge.transfer.next_transfer`), and answers a suggestion it
already knows — a finished configuration, one in flight, one using an artifact that
failed to build or missed the quality constraint here, or one of a variant whose fp32 missed
it by a wide margin — without measuring it again.

Every trial it submits carries these gates (:class:`tuner.trial.measure.Protocol`): the
quality floor of the constraints (an artifact under it is never timed) and, on a latency
search, an abort line (a probe p50 above it stops the timing: ``pruned``, never a measured
result): ``prune_factor`` × the incumbent's p90 with one objective; with more, where the
others are known before timing (quality, size), ``prune_factor`` × the p90 of the front's
fastest point that is at least as good on them; on a p90 search, a line past which a
candidate's timing ends at the p90 minimum (``BEHIND_FACTOR`` × the incumbent's p90: it
cannot win, so its p99 is not worth 662 calls); and a measurement budget
(``MEASURE_CAP_S``, or twice the baseline's measurement). It also lets a trial read back the
quality its artifact already scored (``reuse_quality``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tuner.knowledge.transfer import TRANSFERS, Transfer, next_transfer
from tuner.search.executor import Executor
from tuner.search.result import best_of, pareto_front
from tuner.search.space import quality_floor
from tuner.search.study import (
    DEFERRED_ATTR,
    EXPLORE_ATTR,
    INFERRED_ATTR,
    PLAN_ATTR,
    PRIOR_ATTR,
    SOURCE_ATTR,
    Suggester,
    measured_digests,
    measured_here,
    recover_interrupted,
    result_digests,
    tell,
)
from tuner.trial.config import Configuration, artifact_digest
from tuner.trial.constraints import Constraint, feasible, quality_shortfall
from tuner.trial.results import (
    KNOWN_BEFORE_TIMING,
    PER_SAMPLE_METRICS,
    TrialResult,
    TrialState,
)
from tuner.trial.run import failed_result
from workloads.base import Workload

Progress = Callable[[dict[str, Any]], None]
EXPLORE_TRIES = 64
# A latency candidate whose probe p50 is this many times the incumbent's p90 is pruned.
PRUNE_FACTOR = 3.0
# On a p90 search, a candidate this many times the incumbent's p90 at the p90 minimum cannot
# be the best: its timing ends there, p99 and throughput unreported (Protocol.behind_p90_ms),
# unless a constraint names one of those. The margin is several times the spread of a 1 s
# p90 on this VM; the confirmation re-times the top few.
BEHIND_FACTOR = 1.25
UNTIMED_BEHIND = ("latency_p99_ms", *PER_SAMPLE_METRICS)
# A trial's measurement budget, s (Protocol.max_measure_s) — or this many times the
# baseline's measurement where that is longer: a model whose ORT default takes minutes to
# score and time gets as long for each of its candidates.
MEASURE_CAP_S = 60.0
BASELINE_MEASURES = 2.0
# A variant whose fp32 misses a quality constraint by more than this (relative to the bound)
# is dead at every precision and backend: lower precisions approximate its fp32 and do not
# land that far above it (convnet-s: fp32 0.965 of the reference, its int8 0.961–0.970,
# fp16 0.965, under a 0.99 floor — four trials a search used to spend finding that out).
VARIANT_MARGIN = 0.01


class SearchLoop:
    """Ask → submit to Ray → collect → tell, keeping ≤ one trial in flight per node."""

    def __init__(self, workload: Workload, study: Any, suggester: Suggester,
                 executor: Executor, objectives: list[str], constraints: list[Constraint],
                 *, seed: int, progress: Progress | None,
                 prune_factor: float | None = PRUNE_FACTOR, staged: bool = True,
                 measure_cap_s: float | None = MEASURE_CAP_S) -> None:
        self.workload, self.study, self.suggester = workload, study, suggester
        self.executor, self.objectives, self.constraints = executor, objectives, constraints
        self.seed, self.progress, self.prune_factor = seed, progress, prune_factor
        self.staged = staged  # False: no gates, no dead artifacts (bench/budget.py's "before")
        self.measure_cap_s = measure_cap_s or None  # the baseline may raise it (baseline())
        self.cache: dict[str, TrialResult] = {}
        self.dead: dict[str, TrialResult] = {}  # artifact digest → why it cannot win (_remember)
        self.dead_variants: dict[str, TrialResult] = {}  # variant → its fp32 under the floor
        for result in measured_digests(study).values():
            self._remember(result)
        self.waiting: dict[str, list[Any]] = {}
        self.failures = 0
        self.space_exhausted = False
        self.plan = [Transfer.from_dict(t) for t in study.user_attrs.get(PLAN_ATTR, [])]
        # digest → (artifact, variant) of every grid point, once: exhaustion counts the twins
        # of dead artifacts and variants
        self.grid_artifacts = {c.digest(): (artifact_digest(c), c.variant)
                               for c in suggester.grid or []}

    def baseline(self, config: Configuration) -> TrialResult:
        """The ORT default fp32 reference, measured first (once per study) with no
        measurement budget; a long one raises the budget of the trials after it."""
        stored = self.study.user_attrs.get("baseline")
        if stored:
            result = TrialResult.model_validate_json(stored)
        else:
            self.executor.submit("baseline", self.workload, config, seed=self.seed)
            self._emit("running", config=config)
            result = None
            while result is None:
                for running, outcome in self.executor.wait(1.0):
                    result = self._as_result(running.config, outcome)
                    self.study.set_user_attr("baseline", result.model_dump_json())
                    if result.config_digest not in self.cache:
                        self._remember(result)
                    self._emit("baseline", result=result)
        if self.measure_cap_s is not None:
            took = result.timings.get("measure_wall_s", 0.0)
            self.measure_cap_s = max(self.measure_cap_s, BASELINE_MEASURES * took)
        return result

    def enqueue_defaults(self, baseline: Configuration, *, strong: bool) -> None:
        """Enqueue re-runs of interrupted trials, then (if ``strong``) strong defaults —
        deferred until the transfer plan is done, when the study has one."""
        for params in recover_interrupted(self.study):
            self.study.enqueue_trial(params, skip_if_exists=False)
        if not strong:
            return
        defaults = strong_defaults(self.workload.reference, baseline)
        planned = []
        for config in defaults:
            config = config.with_updates(hardware=baseline.hardware)
            params = self.suggester.params_for(config.normalized())
            if params is not None:
                planned.append(params)
        if self.plan:
            self.study.set_user_attr(DEFERRED_ATTR, planned)
            return
        for params in planned:
            self.study.enqueue_trial(params, skip_if_exists=True)

    def run(self, budget: int, timeout_s: float | None) -> None:
        """Keep every node busy until the budget, the time or the grid runs out.

        The budget counts measured trials. A suggestion equal to a finished configuration
        is answered from its stored result, one equal to a configuration in flight waits
        for that result; neither is measured again nor counts. Nor is one that uses an
        artifact that failed to build or missed a quality constraint here (it differs only
        in threads, batch or load-time options): it is answered by that result, marked
        ``inferred_from``, and never reported as measured. After such a repeat the next
        trial is an unmeasured configuration near the incumbent (:meth:`_explore`), so
        that a sampler stuck on known ground — typically TPE started from priors — keeps
        learning; when no unmeasured configuration is left, the search ends.
        """
        start = time.monotonic()
        parallel = max(1, sum(self.executor.targets().get(h, 0)
                              for h in self.suggester.space.hardware))
        while True:
            finished = self._finished()
            in_flight = len(self.executor.running)
            waiting = sum(len(trials) for trials in self.waiting.values())
            out_of_time = timeout_s is not None and time.monotonic() - start >= timeout_s

            def exhausted() -> bool:
                if self.suggester.grid is None:
                    return self.space_exhausted
                taken = self._taken()
                return all(d in taken or a in self.dead or v in self.dead_variants
                           for d, (a, v) in self.grid_artifacts.items())

            if in_flight == 0 and (finished >= budget or out_of_time or exhausted()):
                return
            while (in_flight < parallel and finished + in_flight + waiting < budget
                   and not out_of_time and not exhausted()):
                started = self._start_one()
                in_flight += started == "submitted"
                finished += started == "answered"
                waiting += started == "waiting"
            for running, outcome in self.executor.wait(1.0):
                result = self._as_result(running.config, outcome)
                tell(self.study, running.key, result, self.objectives, self.constraints)
                self._remember(result)
                for twin in self.waiting.pop(running.config.digest(), []):
                    twin.set_user_attr("duplicate_of", result.trial_id)
                    tell(self.study, twin, result, self.objectives, self.constraints)
                self.failures += result.state is TrialState.FAILED
                self._emit("finished", result=result)

    def _start_one(self) -> str:
        """Ask for a trial; submit it, answer it from the cache, or park it by its twin."""
        if self.plan:
            self._plan_next()
        trial = self.study.ask()
        config = self.suggester.suggest(trial)
        digest = config.digest()
        known = self.cache.get(digest)
        if known is not None:
            trial.set_user_attr("duplicate_of", known.trial_id)
            tell(self.study, trial, known, self.objectives, self.constraints)
            self._explore()
            return "answered"
        twin = self._failed_twin(config)
        if twin is not None:
            trial.set_user_attr(INFERRED_ATTR, twin.trial_id)
            tell(self.study, trial, twin, self.objectives, self.constraints)
            self._explore()
            return "answered"
        if any(r.config.digest() == digest for r in self.executor.running.values()):
            self.waiting.setdefault(digest, []).append(trial)
            self._explore()
            return "waiting"
        self.executor.submit(trial, self.workload, config, seed=self.seed, gates=self._gates())
        self._emit("running", config=config)
        return "submitted"

    def _gates(self) -> dict[str, Any]:
        """The protocol gates of the next trial (see the module docstring)."""
        gates: dict[str, Any] = {}
        if not self.staged:
            return gates
        gates["reuse_quality"] = True  # an artifact's twins read its quality back
        if self.measure_cap_s is not None:
            gates["max_measure_s"] = self.measure_cap_s
        floor = quality_floor(self.constraints)
        if floor is not None:
            gates["quality_floor"] = floor
        objective, others = self.objectives[0], self.objectives[1:]
        if not self.prune_factor or not objective.startswith("latency_"):
            return gates
        good = self._feasible(list(self.cache.values()))
        if not others:
            incumbent = best_of(good, objective)
            p90 = incumbent.metric("latency_p90_ms") if incumbent is not None else None
            if p90:
                gates["abort_p50_ms"] = self.prune_factor * p90
            if p90 and objective == "latency_p90_ms" and not any(
                    c.metric in UNTIMED_BEHIND for c in self.constraints):
                gates["behind_p90_ms"] = BEHIND_FACTOR * p90
        elif all(o in KNOWN_BEFORE_TIMING for o in others):
            # Multi-objective: the worker prunes a candidate the front dominates with margin
            # once its quality (and size) are known (measure.front_abort_line).
            front = [{"latency_p90_ms": r.metric("latency_p90_ms")}
                     | {o: r.metric(o) for o in others}
                     for r in pareto_front(good, self.objectives) if r.metric("latency_p90_ms")]
            if front:
                gates["abort_front"] = front
                gates["abort_factor"] = self.prune_factor
        return gates

    def _remember(self, result: TrialResult) -> None:
        """Cache ``result``; if its artifact failed to build or missed a quality constraint,
        note the artifact: every configuration using it (one that differs only in threads,
        batch or load-time options) would fail the same way, so none is worth measuring."""
        for digest in result_digests(result):
            self.cache[digest] = result
        dead = ((result.state is TrialState.FAILED and result.failed_stage == "build")
                or result.state is TrialState.INFEASIBLE
                or quality_shortfall(self.constraints, result) > 0)
        if dead and self.staged:
            config = Configuration.parse(result.config)
            self.dead.setdefault(artifact_digest(config), result)
            if (config.precision == "fp32"
                    and quality_shortfall(self.constraints, result) > VARIANT_MARGIN):
                self.dead_variants.setdefault(config.variant, result)

    def _taken(self) -> set[str]:
        """Digests of the configurations measured here or in flight."""
        return set(self.cache) | {r.config.digest() for r in self.executor.running.values()}

    def _failed_twin(self, config: Configuration) -> TrialResult | None:
        """The record that settles ``config`` unmeasured: its artifact's, or its variant's
        fp32 far under a quality constraint (:data:`VARIANT_MARGIN`)."""
        return self.dead.get(artifact_digest(config)) or self.dead_variants.get(config.variant)

    def _plan_next(self) -> None:
        """When nothing else waits, enqueue the transfer that is best given what this search
        knows so far; once ``TRANSFERS`` were taken or none is worth it, end the plan and
        enqueue the deferred strong defaults."""
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return
        taken = sum(1 for t in trials if SOURCE_ATTR in t.user_attrs
                    and PRIOR_ATTR not in t.user_attrs)
        pick = next_transfer(self.plan, list(self.cache.values()), self.constraints,
                             self._taken()) if taken < TRANSFERS else None
        if pick is not None:
            self.study.enqueue_trial(pick.params, user_attrs={SOURCE_ATTR: pick.label})
            return
        self.plan = []
        for params in self.study.user_attrs.get(DEFERRED_ATTR, []):
            self.study.enqueue_trial(params, skip_if_exists=True)
        self.study.set_user_attr(DEFERRED_ATTR, [])

    def _explore(self) -> None:
        """Enqueue an unmeasured configuration one decision away from the best feasible one
        so far, else a random unmeasured one; or note that none is left.

        TPE repeating itself means its model has nothing new to say; the incumbent's
        neighbourhood is where an improvement is likeliest, while a uniform draw over the
        conditional tree mostly lands on variants and precisions already ruled out.
        """
        import random

        taken = self._taken()
        rng = random.Random(f"{self.seed}-{len(taken)}")

        def settled(config: Configuration) -> bool:
            return config.digest() in taken or self._failed_twin(config) is not None

        incumbent = best_of(feasible(list(self.cache.values()), self.constraints),
                          self.objectives[0])
        around = (self.suggester.params_for(Configuration.parse(incumbent.config))
                  if incumbent is not None else None)
        for attempt in range(EXPLORE_TRIES):
            if around and attempt < EXPLORE_TRIES // 2:
                config = self.suggester.space.build(_one_step(around, rng.choice(sorted(around)),
                                                              rng))
            else:
                config = self.suggester.space.build(lambda _name, choices: rng.choice(choices))
            params = self.suggester.params_for(config)
            if params is not None and not settled(config):
                self.study.enqueue_trial(params, user_attrs={EXPLORE_ATTR: True})
                return
        left = [c for c in self.suggester.space.configurations() if not settled(c)]
        if left:
            params = self.suggester.params_for(rng.choice(left))
            self.study.enqueue_trial(params, user_attrs={EXPLORE_ATTR: True})
        else:
            self.space_exhausted = True

    def _finished(self) -> int:
        """Measured trials of this search: not priors, repeats or interrupted ones."""
        return sum(1 for t in self.study.get_trials(deepcopy=False)
                   if t.state.is_finished() and measured_here(t)
                   and not str(t.user_attrs.get("error", "")).startswith("interrupted"))

    def _as_result(self, config: Configuration, outcome: TrialResult | str) -> TrialResult:
        if isinstance(outcome, TrialResult):
            return outcome
        return failed_result(self.workload, config, outcome, stage="executor", seed=self.seed)

    def announce(self, note: str) -> None:
        """Tell the progress display what the search does besides trials (confirming)."""
        self._emit("note", note=note)

    def _emit(self, event: str, **payload: Any) -> None:
        if self.progress is not None:
            running = [r.config for r in self.executor.running.values()]
            best = best_of(self._feasible(list(self.cache.values())), self.objectives[0])
            self.progress({"event": event, "finished": self._finished(), "running": running,
                           "best": best, "failures": self.failures} | payload)

    def _feasible(self, results: list[TrialResult]) -> list[TrialResult]:
        return feasible(results, self.constraints)


def strong_defaults(reference: str, baseline: Configuration) -> list[Configuration]:
    """What a search measures first, in this order (those outside its space drop out): the
    baseline, the reference variant's defaults, int8 static on the default backend, then
    each other backend's int8 static and its own defaults — the one-line tries a user would
    make on each engine, on all the baseline's cores (the peer's default is what a search
    must beat), so a small budget never ends without them — and per-channel int8."""
    from tuner.backends.registry import DEFAULT_BACKEND, backend_names, runs_precision

    others = [name for name in backend_names() if name != DEFAULT_BACKEND]
    on = {"variant": reference, "threads": baseline.threads}  # all the cores, as a user would
    return [baseline, Configuration(variant=reference),
            Configuration(**on, precision="int8-static"),
            *(Configuration(**on, backend=name, precision="int8-static")
              for name in others if name in runs_precision("int8-static")),
            *(Configuration(**on, backend=name) for name in others),
            Configuration(**on, precision="int8-static", per_channel=True)]


def _one_step(around: dict[str, Any], changed: str, rng: Any) -> Any:
    """A ``Space.build`` chooser that keeps ``around``'s decisions but ``changed``, which
    takes another value; decisions ``around`` never made (a new branch) are drawn."""
    def choose(name: str, choices: list[Any]) -> Any:
        if name == changed:
            others = [c for c in choices if c != around.get(name)]
            return rng.choice(others or choices)
        return around[name] if around.get(name) in choices else rng.choice(choices)

    return choose

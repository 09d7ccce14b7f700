"""``optimize()``: a constrained, multi-objective search over a workload's space.

>>> from tuner import optimize
>>> result = optimize(workload="digits", objectives=["latency_p90_ms"],
...                   constraints=["quality_ratio >= 0.99"], trials=20)  # doctest: +SKIP
>>> result.best.config, result.best.metrics.latency_p90_ms  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.config import Configuration, numerics_digest
from tuner.constraints import (
    Constraint,
    parse_constraints,
    quality_shortfall,
    unmet,
    violations,
)
from tuner.errors import ConfigError, HardwareError
from tuner.executor import Executor, RayExecutor
from tuner.hardware import fingerprint, load_profile
from tuner.measure import Protocol
from tuner.results import METRIC_DIRECTIONS, Stability, TrialResult
from tuner.search import (
    MEMORY,
    RESULT_ATTR,
    SAMPLERS,
    Suggester,
    default_storage,
    directions,
    make_sampler,
    measured_digests,
    open_study,
    recover_interrupted,
    tell,
)
from tuner.space import default_space
from tuner.trial import DEFAULT_TIMEOUT_S, failed_result
from workloads.base import Workload

if TYPE_CHECKING:
    from tuner.knowledge import KnowledgeStore

# Trial attributes set by :mod:`tuner.warmstart` (kept here so ``import tuner`` stays light).
SOURCE_ATTR = "knowledge_source"
PRIOR_ATTR = "knowledge_prior"
EXPLORE_ATTR = "explore_after_repeat"
INFERRED_ATTR = "inferred_from"  # answered by a same-numbers twin that failed quality
KNOWLEDGE_USED_ATTR = "knowledge_used"  # priors + transfers a fresh study started from
PLAN_ATTR = "knowledge_transfer_plan"  # ranked transfers the loop picks from, one at a time
DEFERRED_ATTR = "deferred_defaults"  # strong defaults waiting for the transfers to finish
EXPLORE_TRIES = 64

Progress = Callable[[dict[str, Any]], None]
NEAREST = 3


@dataclass
class OptimizationResult:
    """What a search found. ``trials`` and ``pareto`` are pandas DataFrames."""

    study: str
    storage: str
    objectives: list[str]
    constraints: list[str]
    baseline: TrialResult | None
    results: list[TrialResult]
    feasible: list[TrialResult] = field(default_factory=list)
    best: TrialResult | None = None
    nearest: list[dict[str, Any]] = field(default_factory=list)
    front: list[TrialResult] = field(default_factory=list)
    knowledge: dict[str, str] = field(default_factory=dict)  # trial_id → where it came from
    sampler: str = ""  # the sampler that ran (``auto`` resolved)
    sampler_reason: str = ""  # why ``auto`` chose it

    @property
    def n_trials(self) -> int:
        return len(self.results)

    @property
    def n_failed(self) -> int:
        return sum(not r.ok for r in self.results)

    @property
    def trials(self):
        import pandas as pd

        return pd.DataFrame([r.flat() | {"knowledge_source": self.knowledge.get(r.trial_id)}
                             for r in self.results])

    @property
    def pareto(self):
        import pandas as pd

        return pd.DataFrame([r.flat() for r in self.front])

    def as_dict(self) -> dict[str, Any]:
        dump = lambda r: r.model_dump(mode="json") if r else None  # noqa: E731
        return {"study": self.study, "storage": self.storage, "objectives": self.objectives,
                "constraints": self.constraints, "baseline": dump(self.baseline),
                "best": dump(self.best), "pareto": [dump(r) for r in self.front],
                "nearest": [{"trial": dump(n["trial"]), "unmet": n["unmet"]}
                            for n in self.nearest],
                "trials": [dump(r) for r in self.results], "n_trials": self.n_trials,
                "n_feasible": len(self.feasible), "n_failed": self.n_failed,
                "sampler": self.sampler, "sampler_reason": self.sampler_reason,
                "knowledge": self.knowledge}

    def to_json(self, path: Path | str | None = None) -> str:
        text = json.dumps(self.as_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text


def optimize(workload: str | Workload = "digits", objectives: Sequence[str] = ("latency_p90_ms",),
             constraints: Sequence[str] = (), hardware: Sequence[str] = ("local",), *,
             trials: int | None = 30, timeout_s: float | None = None,
             space: dict[str, Any] | None = None, sampler: str = "auto", seed: int = 0,
             study: str | None = None, storage: str | None = None,
             ray_address: str | None = None, trial_timeout_s: float = DEFAULT_TIMEOUT_S,
             protocol: Protocol | None = None, progress: Progress | None = None,
             executor: Executor | None = None, defaults: bool = True,
             warm_start: bool = True, knowledge: KnowledgeStore | None = None,
             ) -> OptimizationResult:
    """Search ``workload``'s configurations for the best under ``constraints``.

    Args:
        workload: a built-in name, a Workload, or ``workloads.from_files(model, data)``.
        objectives: metric names; each has a known direction (see README glossary).
        constraints: expressions like ``"quality_ratio >= 0.99"``.
        hardware: hardware profiles the search may target (Ray resources ``hw:<name>``).
        trials: budget of finished trials (resumed studies count what they have).
        timeout_s: wall-clock budget; the search stops submitting after it.
        space: restrict/fix dimensions, e.g. ``{"backend": "ort", "threads": [1, 2]}``.
        sampler: ``auto`` (constrained multivariate TPE), ``tpe``, ``nsga2``, ``random``,
            ``grid``.
        study, storage: Optuna study name and RDB URL (default SQLite under PODIUM_HOME).
        ray_address: None for a local Ray; ``"auto"`` or an address to join a cluster.
        trial_timeout_s: limit for each trial's build and measurement.
        protocol: measurement minimums (default: MEASUREMENT.md's).
        progress: called with a dict after every event (the CLI's live display).
        executor: where trials run (default: Ray); benchmarks replay measured tables.
        defaults: enqueue the baseline and strong default configurations first — after the
            warm start's transfers, if any (turn off only to measure a sampler on its own).
        warm_start: start a new study from the knowledge store (see :mod:`tuner.warmstart`).
        knowledge: the store to learn from and record into; default ``knowledge.db`` under
            PODIUM_HOME, except for in-memory studies (replays), which use none unless given.

    Raises:
        InputError: unknown workload/metric/profile, bad constraint, bad space override.
    """
    import workloads as registry

    if trials is None and timeout_s is None:
        raise ConfigError("give a budget: trials or timeout_s")
    chosen = registry.get(workload) if isinstance(workload, str) else workload
    objectives = list(objectives)
    parsed, profiles = check_request(chosen, objectives, constraints, hardware, space=space,
                                     sampler=sampler)
    cores = min(p.cores for p in profiles)
    storage = storage or default_storage()
    study_name = study or f"{chosen.name}-{'-'.join(objectives)}"
    executor = executor or RayExecutor(address=ray_address, timeout_s=trial_timeout_s,
                                       protocol=protocol)
    executor.start()
    try:
        executor.require([p.name for p in profiles])
        cores = min(cores, *(executor.max_cpus(p.name) for p in profiles))
        search_space = default_space(chosen.variants, hardware=[p.name for p in profiles],
                                     cores=cores, fixed_batch=chosen.fixed_batch).restrict(space)
        suggester = Suggester(search_space, grid=sampler == "grid")
        grid_size = len(suggester.grid) if suggester.grid is not None else 0
        identity = {"workload": chosen.sha256, "objectives": objectives,
                    "constraints": [str(c) for c in parsed], "space": repr(search_space)}
        if knowledge is None and storage != MEMORY:
            from tuner.knowledge import KnowledgeStore

            knowledge = KnowledgeStore()
        workload_fp, hardware_fp = _fingerprints(chosen, profiles[0], knowledge)
        used, reason = _resolve_sampler(sampler, knowledge, workload_fp, hardware_fp,
                                        objectives[0])
        optuna_study = open_study(
            name=study_name, storage=storage, objectives=objectives, identity=identity,
            sampler=make_sampler(used, seed=seed, grid_size=grid_size))
        fresh = not optuna_study.trials
        if fresh:
            counts = {"priors": 0, "planned": 0}
            if knowledge is not None and warm_start:
                from tuner.warmstart import warm_start as start_warm

                counts = start_warm(optuna_study, suggester, chosen, store=knowledge,
                                    workload_fp=workload_fp, hardware_fp=hardware_fp,
                                    hardware=profiles[0].name, objectives=objectives,
                                    constraints=parsed)
            optuna_study.set_user_attr(KNOWLEDGE_USED_ATTR, sum(counts.values()))
        loop = _SearchLoop(chosen, optuna_study, suggester, executor, objectives, parsed,
                           seed=seed, progress=progress)
        baseline_config = Configuration(variant=chosen.reference, threads=cores,
                                        hardware=profiles[0].name)
        baseline = loop.baseline(baseline_config)
        loop.enqueue_defaults(baseline_config, strong=defaults and fresh)
        budget = trials if trials is not None else 10**9
        loop.run(budget, timeout_s)
    finally:
        executor.stop()
    result = summarise(optuna_study, study_name, storage, objectives, parsed, baseline)
    result.sampler, result.sampler_reason = used, reason
    if knowledge is not None:
        knowledge.record([baseline, *result.results], workload_fp, f"local study {study_name}")
        if optuna_study.user_attrs.get(KNOWLEDGE_USED_ATTR) == 0 and used != "grid":
            _record_search(knowledge, optuna_study, f"{storage}#{study_name}", used,
                           workload_fp, hardware_fp, objectives[0], parsed)
    return result


def _resolve_sampler(sampler: str, knowledge: KnowledgeStore | None, workload_fp: Any,
                     hardware_fp: dict[str, Any], objective: str) -> tuple[str, str]:
    """``auto`` becomes the sampler past similar searches favour (:mod:`tuner.selftune`)."""
    from tuner.selftune import DEFAULT, choose_sampler

    if sampler != "auto":
        return sampler, ""
    if knowledge is None:
        return DEFAULT, f"auto → {DEFAULT}: no knowledge store"
    return choose_sampler(knowledge.searches(), workload_fp, hardware_fp, objective)


def _record_search(knowledge: KnowledgeStore, study: Any, search_id: str, sampler: str,
                   workload_fp: Any, hardware_fp: dict[str, Any], objective: str,
                   constraints: list[Constraint]) -> None:
    """Tell the store how fast this cold search reached its best, for ``auto`` next time."""
    from tuner.selftune import trials_to_best

    if search_id.startswith(MEMORY):
        search_id = f"{MEMORY}#{uuid.uuid4().hex}"
    measured = [TrialResult.model_validate_json(t.user_attrs[RESULT_ATTR])
                for t in study.get_trials(deepcopy=False)
                if RESULT_ATTR in t.user_attrs and _measured_here(t)]
    reached, best = trials_to_best(measured, objective, constraints)
    knowledge.record_search(search_id, workload=workload_fp, hardware_fp=hardware_fp,
                            sampler=sampler, objective=objective, measured=len(measured),
                            trials_to_best=reached, best=best)


def _measured_here(trial: Any) -> bool:
    """A trial this search ran, not a prior from the knowledge store nor a repeat answered
    from another trial's result."""
    return (PRIOR_ATTR not in trial.user_attrs and "duplicate_of" not in trial.user_attrs
            and INFERRED_ATTR not in trial.user_attrs)


def _fingerprints(workload: Workload, profile: Any,
                  knowledge: KnowledgeStore | None) -> tuple[Any, dict[str, Any]]:
    """The keys of the knowledge store for this search; skipped when there is no store."""
    if knowledge is None:
        return None, {}
    from tuner.fingerprint import workload_fingerprint

    return workload_fingerprint(workload), fingerprint(profile)


def check_request(workload: Workload, objectives: Sequence[str], constraints: Sequence[str],
                  hardware: Sequence[str], *, space: dict[str, Any] | None,
                  sampler: str) -> tuple[list[Constraint], list[Any]]:
    """Validate a search request without starting anything (the CLI calls it before its
    live display, ``optimize`` before Ray); return the parsed constraints and profiles.

    Raises:
        InputError: unknown metric/profile/sampler, bad constraint or space override.
    """
    parsed = parse_constraints(constraints)
    directions(objectives)
    profiles = [load_profile(h) for h in hardware]
    if not profiles:
        raise HardwareError("give at least one hardware profile")
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r} (valid: {', '.join(SAMPLERS)})")
    default_space(workload.variants, hardware=[p.name for p in profiles],
                  cores=min(p.cores for p in profiles),
                  fixed_batch=workload.fixed_batch).restrict(space)
    return parsed, profiles


class _SearchLoop:
    """Ask → submit to Ray → collect → tell, keeping ≤ one trial in flight per node."""

    def __init__(self, workload: Workload, study: Any, suggester: Suggester,
                 executor: Executor, objectives: list[str], constraints: list[Constraint],
                 *, seed: int, progress: Progress | None) -> None:
        self.workload, self.study, self.suggester = workload, study, suggester
        self.executor, self.objectives, self.constraints = executor, objectives, constraints
        self.seed, self.progress = seed, progress
        self.cache: dict[str, TrialResult] = {}
        self.failed_numerics: dict[str, TrialResult] = {}  # see _remember
        for result in measured_digests(study).values():
            self._remember(result)
        self.waiting: dict[str, list[Any]] = {}
        self.failures = 0
        self.space_exhausted = False
        from tuner.warmstart import Transfer

        self.plan = [Transfer.from_dict(t) for t in study.user_attrs.get(PLAN_ATTR, [])]
        # digest → numerics of every grid point, once: exhaustion counts known failures' twins
        self.grid_numerics = {c.digest(): numerics_digest(c) for c in suggester.grid or []}

    def baseline(self, config: Configuration) -> TrialResult:
        """The ORT default fp32 reference, measured first (once per study)."""
        stored = self.study.user_attrs.get("baseline")
        if stored:
            return TrialResult.model_validate_json(stored)
        self.executor.submit("baseline", self.workload, config, seed=self.seed)
        self._emit("running", config=config)
        while True:
            for running, outcome in self.executor.wait(1.0):
                result = self._as_result(running.config, outcome)
                self.study.set_user_attr("baseline", result.model_dump_json())
                if result.config_digest not in self.cache:
                    self._remember(result)
                self._emit("baseline", result=result)
                return result

    def enqueue_defaults(self, baseline: Configuration, *, strong: bool) -> None:
        """Enqueue re-runs of interrupted trials, then (if ``strong``) strong defaults —
        deferred until the transfer plan is done, when the study has one."""
        for params in recover_interrupted(self.study):
            self.study.enqueue_trial(params, skip_if_exists=False)
        if not strong:
            return
        ref = self.workload.reference
        defaults = [baseline, Configuration(variant=ref),
                    Configuration(variant=ref, precision="int8-static"),
                    Configuration(variant=ref, precision="int8-static", per_channel=True)]
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
        for that result; neither is measured again nor counts. Nor is one that computes the
        same numbers as a configuration that failed a quality constraint here (it differs
        only in threads): it is answered by that result, marked ``inferred_from``, and never
        reported as measured. After such a repeat the next trial is an unmeasured
        configuration near the incumbent (:meth:`_explore`), so that a sampler stuck on
        known ground — typically TPE started from priors — keeps learning; when no
        unmeasured configuration is left, the search ends.
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
                return all(d in taken or n in self.failed_numerics
                           for d, n in self.grid_numerics.items())

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
                self.failures += not result.ok
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
        self.executor.submit(trial, self.workload, config, seed=self.seed)
        self._emit("running", config=config)
        return "submitted"

    def _remember(self, result: TrialResult) -> None:
        """Cache ``result``; if it failed a quality constraint, note its numerics: every
        configuration computing the same numbers (one that differs only in threads) would
        fail it the same way, so none is worth measuring."""
        self.cache[result.config_digest] = result
        if quality_shortfall(self.constraints, result) > 0:
            key = numerics_digest(Configuration.parse(result.config))
            self.failed_numerics.setdefault(key, result)

    def _taken(self) -> set[str]:
        """Digests of the configurations measured here or in flight."""
        return set(self.cache) | {r.config.digest() for r in self.executor.running.values()}

    def _failed_twin(self, config: Configuration) -> TrialResult | None:
        return self.failed_numerics.get(numerics_digest(config))

    def _plan_next(self) -> None:
        """When nothing else waits, enqueue the transfer that is best given what this search
        knows so far; once ``TRANSFERS`` were taken or none is worth it, end the plan and
        enqueue the deferred strong defaults."""
        from optuna.trial import TrialState

        from tuner.warmstart import TRANSFERS, next_transfer

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
            return config.digest() in taken or numerics_digest(config) in self.failed_numerics

        incumbent = _best(feasible(list(self.cache.values()), self.constraints),
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
                   if t.state.is_finished() and _measured_here(t)
                   and not str(t.user_attrs.get("error", "")).startswith("interrupted"))

    def _as_result(self, config: Configuration, outcome: TrialResult | str) -> TrialResult:
        if isinstance(outcome, TrialResult):
            return outcome
        return failed_result(self.workload, config, outcome, stage="executor", seed=self.seed)

    def _emit(self, event: str, **payload: Any) -> None:
        if self.progress is not None:
            running = [r.config for r in self.executor.running.values()]
            best = _best(self._feasible(list(self.cache.values())), self.objectives[0])
            self.progress({"event": event, "finished": self._finished(), "running": running,
                           "best": best, "failures": self.failures} | payload)

    def _feasible(self, results: list[TrialResult]) -> list[TrialResult]:
        return feasible(results, self.constraints)


def feasible(results: list[TrialResult], constraints: list[Constraint]) -> list[TrialResult]:
    """Complete, not unstable, every constraint met."""
    return [r for r in results if r.ok and r.metrics.stability is not Stability.UNSTABLE
            and not unmet(constraints, r)]


def _key(result: TrialResult, objective: str) -> float:
    value = result.metric(objective)
    sign = 1.0 if METRIC_DIRECTIONS[objective] == "minimize" else -1.0
    return sign * value if value is not None else float("inf")


def _best(results: list[TrialResult], objective: str) -> TrialResult | None:
    ranked = sorted(results, key=lambda r: (_key(r, objective), r.started_at))
    return ranked[0] if ranked else None


def pareto_front(results: list[TrialResult], objectives: list[str]) -> list[TrialResult]:
    """Non-dominated results over ``objectives`` (ties on every objective all kept)."""
    points = [(r, [_key(r, o) for o in objectives]) for r in results]
    front = []
    for result, values in points:
        dominated = any(all(o <= v for o, v in zip(other, values, strict=True))
                        and any(o < v for o, v in zip(other, values, strict=True))
                        for _, other in points)
        if not dominated:
            front.append(result)
    return sorted(front, key=lambda r: _key(r, objectives[0]))


def _one_step(around: dict[str, Any], changed: str, rng: Any) -> Any:
    """A ``Space.build`` chooser that keeps ``around``'s decisions but ``changed``, which
    takes another value; decisions ``around`` never made (a new branch) are drawn."""
    def choose(name: str, choices: list[Any]) -> Any:
        if name == changed:
            others = [c for c in choices if c != around.get(name)]
            return rng.choice(others or choices)
        return around[name] if around.get(name) in choices else rng.choice(choices)

    return choose


def summarise(study: Any, name: str, storage: str, objectives: list[str],
              constraints: list[Constraint], baseline: TrialResult | None) -> OptimizationResult:
    """Build the result from what the study holds (works for resumed studies too)."""
    seen: set[str] = set()
    results = []
    sources: dict[str, str] = {}
    trials = study.get_trials(deepcopy=False)
    # Priors are knowledge, not trials of this search; a suggestion they answered is.
    priors = {t.user_attrs[RESULT_ATTR]: t.user_attrs[SOURCE_ATTR] for t in trials
              if PRIOR_ATTR in t.user_attrs}
    for trial in trials:
        if RESULT_ATTR in trial.user_attrs and PRIOR_ATTR not in trial.user_attrs:
            result = TrialResult.model_validate_json(trial.user_attrs[RESULT_ATTR])
            source = trial.user_attrs.get(SOURCE_ATTR, priors.get(trial.user_attrs[RESULT_ATTR]))
            if source is not None:
                sources.setdefault(result.trial_id, source)
            if result.trial_id not in seen:
                seen.add(result.trial_id)
                results.append(result)
    good = feasible(results, constraints)
    nearest = []
    if not good:
        candidates = [r for r in results if r.ok]
        candidates.sort(key=lambda r: sum(max(v, 0) for v in violations(constraints, r)))
        nearest = [{"trial": r, "unmet": unmet(constraints, r)} for r in candidates[:NEAREST]]
    return OptimizationResult(
        study=name, storage=storage, objectives=objectives,
        constraints=[str(c) for c in constraints], baseline=baseline, results=results,
        feasible=good, best=_best(good, objectives[0]), nearest=nearest,
        front=pareto_front(good, objectives), knowledge=sources)

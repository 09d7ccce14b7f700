"""``optimize()``: a constrained, multi-objective search over a workload's space.

The entry point of the search stage: it checks the request, opens (or resumes) the Optuna
study (:mod:`tuner.search.study`), starts it from the knowledge store
(:mod:`tuner.search.warmstart`), runs the loop (:mod:`tuner.search.loop`) on an executor
(:mod:`tuner.search.executor`) and returns an :class:`~tuner.search.result.OptimizationResult`.

>>> from tuner import optimize
>>> result = optimize(workload="digits", objectives=["latency_p90_ms"],
...                   constraints=["quality_ratio >= 0.99"], trials=20)  # doctest: +SKIP
>>> result.best.config, result.best.metrics.latency_p90_ms  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tuner.errors import ConfigError, HardwareError
from tuner.hardware import load_profile
from tuner.knowledge.store import KnowledgeStore
from tuner.search.confirm import CONFIRM_ROUNDS, confirm, default_top
from tuner.search.executor import Executor, RayExecutor
from tuner.search.loop import MEASURE_CAP_S, PRUNE_FACTOR, Progress, SearchLoop
from tuner.search.result import CONFIRMATION_KEY, OptimizationResult, rank_key, summarise
from tuner.search.space import Space, default_space, quality_floor
from tuner.search.study import (
    KNOWLEDGE_USED_ATTR,
    MEMORY,
    SAMPLERS,
    Suggester,
    default_storage,
    directions,
    make_sampler,
    open_study,
)
from tuner.search.warmstart import fingerprints, record_search, resolve_sampler
from tuner.search.warmstart import warm_start as start_warm
from tuner.trial.config import Configuration
from tuner.trial.constraints import Constraint, parse_constraints
from tuner.trial.measure import Protocol
from tuner.trial.results import PER_SAMPLE_METRICS
from tuner.trial.run import DEFAULT_TIMEOUT_S
from workloads.base import Workload


def optimize(workload: str | Workload = "digits", objectives: Sequence[str] = ("latency_p90_ms",),
             constraints: Sequence[str] = (), hardware: Sequence[str] = ("local",), *,
             trials: int | None = 30, timeout_s: float | None = None,
             space: dict[str, Any] | None = None, sampler: str = "auto", seed: int = 0,
             study: str | None = None, storage: str | None = None,
             ray_address: str | None = None, trial_timeout_s: float = DEFAULT_TIMEOUT_S,
             protocol: Protocol | None = None, progress: Progress | None = None,
             executor: Executor | None = None, defaults: bool = True,
             warm_start: bool = True, knowledge: KnowledgeStore | None = None,
             prune_factor: float | None = PRUNE_FACTOR, staged: bool = True,
             measure_cap_s: float | None = MEASURE_CAP_S,
             confirm_top: int | None = None,
             confirm_rounds: int = CONFIRM_ROUNDS) -> OptimizationResult:
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
        warm_start: start a new study from the knowledge store (see :mod:`tuner.search.warmstart`).
        knowledge: the store to learn from and record into; default ``knowledge.db`` under
            PODIUM_HOME, except for in-memory studies (replays), which use none unless given.
        prune_factor: on a single-objective latency search, stop timing a candidate whose
            probe p50 is above this many times the incumbent's p90 (``pruned``); None or 0
            times every candidate in full. An artifact under a ``quality_ratio`` floor is
            never timed, whatever this is.
        measure_cap_s: a trial's measurement budget in seconds, from loading its artifact
            to its last timed call (``Protocol.max_measure_s``); twice the baseline's
            measurement where that is longer; None for none. A candidate that cannot meet
            the protocol's minimums within it is ``pruned`` before it is scored; p99 goes
            unreported where its 662 calls do not fit. The baseline is never capped.
        staged: False turns off the quality gate, pruning and the answers from dead
            artifacts (every suggestion is built and timed in full): only for comparing
            against how searches ran before them (``bench/budget.py``).
        confirm_top, confirm_rounds: before reporting, re-measure the best ``confirm_top``
            feasible results and the baseline in ``confirm_rounds`` interleaved rounds, each
            in a fresh worker process, and report the best and its speed-up from that
            (``result.confirmation``; :mod:`tuner.search.confirm`). Default 3 (or
            ``PODIUM_CONFIRM_TOP``); 0 skips it.

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
        search_space = plan_space(chosen, objectives, parsed, profiles, cores=cores,
                                  space=space)
        suggester = Suggester(search_space, grid=sampler == "grid")
        grid_size = len(suggester.grid) if suggester.grid is not None else 0
        identity = {"workload": chosen.sha256, "objectives": objectives,
                    "constraints": [str(c) for c in parsed], "space": repr(search_space)}
        if knowledge is None and storage != MEMORY:
            knowledge = KnowledgeStore()
        workload_fp, hardware_fp = fingerprints(chosen, profiles[0], knowledge)
        used, reason = resolve_sampler(sampler, knowledge, workload_fp, hardware_fp,
                                       objectives[0])
        optuna_study = open_study(
            name=study_name, storage=storage, objectives=objectives, identity=identity,
            sampler=make_sampler(used, seed=seed, grid_size=grid_size))
        fresh = not optuna_study.trials
        if fresh:
            counts = {"priors": 0, "planned": 0}
            if knowledge is not None and warm_start:
                counts = start_warm(optuna_study, suggester, chosen, store=knowledge,
                                    workload_fp=workload_fp, hardware_fp=hardware_fp,
                                    hardware=profiles[0].name, objectives=objectives,
                                    constraints=parsed)
            optuna_study.set_user_attr(KNOWLEDGE_USED_ATTR, sum(counts.values()))
        loop = SearchLoop(chosen, optuna_study, suggester, executor, objectives, parsed,
                          seed=seed, progress=progress, prune_factor=prune_factor,
                          measure_cap_s=measure_cap_s,
                          staged=staged)
        baseline_config = Configuration(variant=chosen.reference, threads=cores,
                                        hardware=profiles[0].name)
        baseline = loop.baseline(baseline_config)
        loop.enqueue_defaults(baseline_config, strong=defaults and fresh)
        budget = trials if trials is not None else 10**9
        loop.run(budget, timeout_s)
        result = summarise(optuna_study, study_name, storage, objectives, parsed, baseline)
        top = default_top() if confirm_top is None else confirm_top
        ranked = sorted(result.feasible, key=lambda r: rank_key(r, objectives[0]))[:top]
        if top > 0 and ranked and baseline.ok and executor.remeasures:
            result.confirm(confirm(executor, chosen, ranked, baseline, objectives[0],
                                   rounds=confirm_rounds, seed=seed, progress=loop.announce))
            # Kept with the study: ``podium export --study`` exports the confirmed best.
            optuna_study.set_user_attr(CONFIRMATION_KEY, result.confirmation)
    finally:
        executor.stop()
    result.sampler, result.sampler_reason = used, reason
    if knowledge is not None:
        knowledge.record([baseline, *result.results], workload_fp, f"local study {study_name}")
        if optuna_study.user_attrs.get(KNOWLEDGE_USED_ATTR) == 0 and used != "grid":
            record_search(knowledge, optuna_study, f"{storage}#{study_name}", used,
                          workload_fp, hardware_fp, objectives[0], parsed)
    return result


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
    plan_space(workload, objectives, parsed, profiles, cores=min(p.cores for p in profiles),
               space=space)
    return parsed, profiles


def plan_space(workload: Workload, objectives: Sequence[str], constraints: Sequence[Constraint],
               profiles: Sequence[Any], *, cores: int, space: dict[str, Any] | None) -> Space:
    """The space a search of ``workload`` walks: the default space for these profiles, fit
    to the request (batches only where a per-sample metric is an objective or constrained,
    the options that follow a quality floor), then the user's ``space`` restriction."""
    metrics = {*objectives, *(c.metric for c in constraints)}
    return default_space(workload.variants, hardware=[p.name for p in profiles], cores=cores,
                         fixed_batch=workload.fixed_batch, quality_floor=quality_floor(constraints),
                         batched=bool(metrics & set(PER_SAMPLE_METRICS))).restrict(space)

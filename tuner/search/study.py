"""The Optuna side of a search: study, sampler, suggestions, and what a trial tells.

The study lives in an RDB storage (SQLite under PODIUM_HOME by default), so a search
killed at any moment resumes from it: finished trials are kept and counted, trials left
RUNNING by a dead driver are marked FAIL and their configurations enqueued again, and a
configuration already measured in the study is answered from its stored result instead of
being measured twice. Each finished trial carries its full TrialResult in ``user_attrs``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tuner.errors import ConfigError, one_line
from tuner.search.space import Space
from tuner.trial.config import Configuration
from tuner.trial.constraints import Constraint, unmet, violations
from tuner.trial.results import METRIC_DIRECTIONS, TrialResult
from workloads.paths import home

SAMPLERS = ("auto", "tpe", "nsga2", "random", "grid")
RESULT_ATTR = "result"
DIGEST_ATTR = "config_digest"
GRID_PARAM = "grid_point"
MEMORY = ":memory:"  # an in-process study that is not persisted (replays, benchmarks)
# What the warm start and the search loop note on trials and on the study.
SOURCE_ATTR = "knowledge_source"
PRIOR_ATTR = "knowledge_prior"
EXPLORE_ATTR = "explore_after_repeat"
INFERRED_ATTR = "inferred_from"  # answered by a same-numbers twin that failed quality
KNOWLEDGE_USED_ATTR = "knowledge_used"  # priors + transfers a fresh study started from
PLAN_ATTR = "knowledge_transfer_plan"  # ranked transfers the loop picks from, one at a time
DEFERRED_ATTR = "deferred_defaults"  # strong defaults waiting for the transfers to finish


def default_storage() -> str:
    return f"sqlite:///{home() / 'studies.db'}"


def directions(objectives: Sequence[str]) -> list[str]:
    unknown = [o for o in objectives if o not in METRIC_DIRECTIONS]
    if unknown or not objectives:
        raise ConfigError(f"unknown objective {', '.join(unknown) or '(none given)'} "
                          f"(metrics: {', '.join(METRIC_DIRECTIONS)})")
    return [METRIC_DIRECTIONS[o] for o in objectives]


def make_sampler(name: str, *, seed: int, grid_size: int) -> Any:
    """Build the sampler; ``auto`` is constrained multivariate TPE (see README).

    Constraints reach the samplers through ``Trial.set_constraint`` (Optuna 5), set in
    :func:`tell` before the trial is told.
    """
    import warnings

    import optuna

    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler {name!r} (valid: {', '.join(SAMPLERS)})")
    if name in ("auto", "tpe"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                              n_startup_trials=4)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=8)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return _grid_sampler({GRID_PARAM: list(range(grid_size))}, seed=seed)


def _grid_sampler(search_space: dict[str, list[int]], *, seed: int) -> Any:
    """GridSampler for the ask/tell loop, which stops by itself when the grid is done.

    Optuna's GridSampler calls ``study.stop()`` after the last grid point, which is only
    legal inside ``study.optimize``; our loop checks exhaustion itself instead.
    """
    import optuna

    class AskTellGridSampler(optuna.samplers.GridSampler):
        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return AskTellGridSampler(search_space, seed=seed)


class Suggester:
    """Turns Optuna trials into configurations: the conditional tree, or grid points."""

    def __init__(self, space: Space, *, grid: bool) -> None:
        self.space = space
        self.grid = space.configurations() if grid else None

    def suggest(self, trial: Any) -> Configuration:
        if self.grid is not None:
            return self.grid[trial.suggest_categorical(GRID_PARAM,
                                                       list(range(len(self.grid))))]
        return self.space.suggest(trial)

    def params_for(self, config: Configuration) -> dict[str, Any] | None:
        if self.grid is None:
            return self.space.params_for(config)
        digest = config.digest()
        for index, candidate in enumerate(self.grid):
            if candidate.digest() == digest:
                return {GRID_PARAM: index}
        return None


def open_study(*, name: str, storage: str, objectives: Sequence[str], sampler: Any,
               identity: dict[str, Any]) -> Any:
    """Create or load the study; refuse to resume one made for something else."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(study_name=name, sampler=sampler,
                                    storage=None if storage == MEMORY else storage,
                                    directions=directions(objectives), load_if_exists=True)
    except ValueError as exc:
        raise ConfigError(f"study {name!r} exists with other objectives/directions: {exc}") \
            from None
    except Exception as exc:
        raise ConfigError(f"cannot open study storage {storage!r}: {one_line(exc)}") from None
    stored = study.user_attrs.get("identity")
    if stored is None:
        study.set_user_attr("identity", identity)
    elif stored != identity:
        changed = sorted(k for k in identity if stored.get(k) != identity[k])
        raise ConfigError(f"study {name!r} in {storage} was made for a different search "
                          f"({', '.join(changed)} differ); use another --study name")
    return study


def recover_interrupted(study: Any) -> list[dict[str, Any]]:
    """Mark trials a dead driver left RUNNING as FAIL; return their params to re-enqueue."""
    from optuna.trial import TrialState

    params = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(trial._trial_id, "error",
                                           "interrupted: the driver stopped before it finished")
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        params.append(dict(trial.params))
    return params


def finished_results(study: Any) -> list[TrialResult]:
    """TrialResults stored in the study, in trial order (complete and failed)."""
    results = []
    for trial in study.get_trials(deepcopy=False):
        if RESULT_ATTR in trial.user_attrs:
            results.append(TrialResult.model_validate(json.loads(trial.user_attrs[RESULT_ATTR])))
    return results


def measured_digests(study: Any) -> dict[str, TrialResult]:
    return {digest: r for r in finished_results(study) for digest in result_digests(r)}


def result_digests(result: TrialResult) -> set[str]:
    """The digests ``result`` answers to: the one it was recorded with and its
    configuration's as this version computes it. They differ for a record written before
    options moved to the backends (every key of every backend was hashed then, unset ones
    as null), which must still answer a configuration measured again today."""
    try:
        return {result.config_digest, Configuration.parse(result.config).digest()}
    except ConfigError:  # a configuration this version no longer accepts
        return {result.config_digest}


def measured_here(trial: Any) -> bool:
    """A trial this search ran, not a prior from the knowledge store nor a repeat answered
    from another trial's result."""
    return (PRIOR_ATTR not in trial.user_attrs and "duplicate_of" not in trial.user_attrs
            and INFERRED_ATTR not in trial.user_attrs)


def objective_values(result: TrialResult, objectives: Sequence[str]) -> list[float] | None:
    values = [result.metric(o) for o in objectives]
    return None if any(v is None for v in values) else values


def tell(study: Any, trial: Any, result: TrialResult, objectives: Sequence[str],
         constraints: Sequence[Constraint]) -> None:
    """Record ``result`` on ``trial``: values when complete; PRUNED for a pruned timing
    (Optuna's own state for it); FAIL with the reason otherwise."""
    from optuna.trial import TrialState

    from tuner.trial.results import TrialState as Outcome

    trial.set_user_attr(RESULT_ATTR, result.model_dump_json())
    trial.set_user_attr(DIGEST_ATTR, result.config_digest)
    values = objective_values(result, objectives) if result.ok else None
    if values is None:
        trial.set_user_attr("error", result.error or "an objective metric is missing")
        pruned = result.state is Outcome.PRUNED
        study.tell(trial, state=TrialState.PRUNED if pruned else TrialState.FAIL)
        return
    for constraint, value in zip(constraints, violations(constraints, result), strict=True):
        trial.set_constraint(str(constraint), value)
    trial.set_user_attr("unmet", unmet(constraints, result))
    study.tell(trial, values)

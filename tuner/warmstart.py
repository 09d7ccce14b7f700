"""Warm start: begin a new search from what the knowledge store already knows.

Two ways past results help, depending on how alike the past search is:

* the same workload (graph fingerprint) on the same hardware (fingerprint hash): its
  results are facts about this very search, so they are added to the study as finished
  *prior* trials (``knowledge_prior``) — the sampler's model starts informed and a
  suggestion equal to one of them is answered without measuring again;
* a similar workload or other hardware: its best feasible configurations are
  *transferred* onto the new space and enqueued first, to be measured here
  (``knowledge_source`` on the trial says from where).

Transfer keeps backend, precision, int8 options, ORT flags, threads and batch; the
variant only within the same workload (sha256 or name), the reference otherwise; the
hardware becomes the new search's target. A configuration the new space does not allow
(:meth:`Suggester.params_for` is None) is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tuner.api import PRIOR_ATTR, SOURCE_ATTR
from tuner.config import Configuration
from tuner.constraints import Constraint, violations
from tuner.errors import ConfigError
from tuner.fingerprint import WorkloadFingerprint
from tuner.knowledge import KnowledgeStore, Neighbour
from tuner.results import TrialResult
from tuner.search import DIGEST_ATTR, GRID_PARAM, RESULT_ATTR, Suggester, objective_values
from workloads.base import Workload

NEIGHBOURS = 3
PER_NEIGHBOUR = 3


def transfer(result: TrialResult, *, workload: Workload, hardware: str,
             suggester: Suggester) -> tuple[Configuration, dict[str, Any]] | None:
    """Map a past result's configuration onto this search; None if it does not apply."""
    values = dict(result.config)
    same_workload = (result.workload.sha256 == workload.sha256
                     or result.workload.name == workload.name)
    if not same_workload or values.get("variant") not in workload.variants:
        values["variant"] = workload.reference
    values["hardware"] = hardware
    try:
        config = Configuration.parse(values).normalized()
    except ConfigError:  # a record from another Podium version may not parse
        return None
    params = suggester.params_for(config)
    return None if params is None else (config, params)


def distributions(suggester: Suggester, params: dict[str, Any]) -> dict[str, Any]:
    """The Optuna distributions that :meth:`Suggester.suggest` would use for ``params``."""
    from optuna.distributions import CategoricalDistribution

    if suggester.grid is not None:
        return {GRID_PARAM: CategoricalDistribution(list(range(len(suggester.grid))))}
    found: dict[str, Any] = {}

    def choose(name: str, choices: list[Any]) -> Any:
        found[name] = CategoricalDistribution(choices)
        return params[name]

    suggester.space.build(choose)
    return found


def warm_start(study: Any, suggester: Suggester, workload: Workload, *,
               store: KnowledgeStore, workload_fp: WorkloadFingerprint,
               hardware_fp: dict[str, Any], hardware: str, objectives: list[str],
               constraints: Sequence[Constraint]) -> dict[str, int]:
    """Add priors and enqueue transferred configurations; return counts of each."""
    added = enqueued = 0
    queued: set[str] = set()
    for neighbour in store.nearest(workload_fp, hardware_fp, NEIGHBOURS):
        if neighbour.same_as(workload_fp, hardware_fp):
            added += _add_priors(study, suggester, workload, store.results(neighbour),
                                 objectives, constraints, hardware)
            continue
        best = store.best_configs(neighbour, objectives[0], constraints, PER_NEIGHBOUR)
        for result, source in best:
            mapped = transfer(result, workload=workload, hardware=hardware,
                              suggester=suggester)
            if mapped is None or mapped[0].digest() in queued:
                continue
            queued.add(mapped[0].digest())
            study.enqueue_trial(mapped[1], user_attrs={SOURCE_ATTR: _label(neighbour, source)},
                                skip_if_exists=True)
            enqueued += 1
    return {"priors": added, "enqueued": enqueued}


def _label(neighbour: Neighbour, source: str) -> str:
    return (f"{source}: {neighbour.workload_name} on {neighbour.hardware_profile} "
            f"(similarity {neighbour.similarity:.2f})")


def _add_priors(study: Any, suggester: Suggester, workload: Workload,
                known: list[tuple[TrialResult, str]], objectives: list[str],
                constraints: Sequence[Constraint], hardware: str) -> int:
    """Add this very search's past results as finished trials (not counted as budget)."""
    import optuna
    from optuna.trial import TrialState

    added = 0
    seen: set[str] = set()
    for result, source in known:
        mapped = transfer(result, workload=workload, hardware=hardware, suggester=suggester)
        if mapped is None or result.config_digest in seen:
            continue
        seen.add(result.config_digest)
        values = objective_values(result, objectives) if result.ok else None
        attrs = {SOURCE_ATTR: source, PRIOR_ATTR: True, RESULT_ATTR: result.model_dump_json(),
                 DIGEST_ATTR: result.config_digest}
        state = TrialState.COMPLETE if values is not None else TrialState.FAIL
        limits = dict(zip([str(c) for c in constraints], violations(list(constraints), result),
                          strict=True)) if values is not None else None
        study.add_trial(optuna.trial.create_trial(
            state=state, params=mapped[1], distributions=distributions(suggester, mapped[1]),
            values=values, user_attrs=attrs, constraints=limits or None))
        added += 1
    return added

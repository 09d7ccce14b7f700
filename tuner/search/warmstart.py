"""The search's side of the knowledge store: a new study starts from it, a cold one feeds it.

:func:`warm_start` adds this very search's past results to a fresh study as finished
*prior* trials and stores the transfer plan that :mod:`tuner.knowledge.transfer` ranked
(the loop takes it one pick at a time); :func:`resolve_sampler` turns ``auto`` into the
sampler past similar searches favour (:mod:`tuner.knowledge.selftune`); and
:func:`record_search` tells the store how fast a cold search reached its best.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from tuner.hardware import fingerprint
from tuner.knowledge.fingerprint import WorkloadFingerprint, workload_fingerprint
from tuner.knowledge.selftune import DEFAULT, choose_sampler, trials_to_best
from tuner.knowledge.store import KnowledgeStore
from tuner.knowledge.transfer import NEIGHBOURS, PLAN_SIZE, ranked_transfers, transfer
from tuner.search.study import (
    DIGEST_ATTR,
    GRID_PARAM,
    MEMORY,
    PLAN_ATTR,
    PRIOR_ATTR,
    RESULT_ATTR,
    SOURCE_ATTR,
    Suggester,
    measured_here,
    objective_values,
)
from tuner.trial.constraints import Constraint, violations
from tuner.trial.results import TrialResult
from workloads.base import Workload


def fingerprints(workload: Workload, profile: Any,
                 knowledge: KnowledgeStore | None) -> tuple[Any, dict[str, Any]]:
    """The keys of the knowledge store for this search; skipped when there is no store."""
    if knowledge is None:
        return None, {}
    return workload_fingerprint(workload), fingerprint(profile)


def resolve_sampler(sampler: str, knowledge: KnowledgeStore | None, workload_fp: Any,
                    hardware_fp: dict[str, Any], objective: str) -> tuple[str, str]:
    """``auto`` becomes the sampler past similar searches favour
    (:mod:`tuner.knowledge.selftune`)."""
    if sampler != "auto":
        return sampler, ""
    if knowledge is None:
        return DEFAULT, f"auto → {DEFAULT}: no knowledge store"
    return choose_sampler(knowledge.searches(), workload_fp, hardware_fp, objective)


def record_search(knowledge: KnowledgeStore, study: Any, search_id: str, sampler: str,
                  workload_fp: Any, hardware_fp: dict[str, Any], objective: str,
                  constraints: list[Constraint]) -> None:
    """Tell the store how fast this cold search reached its best, for ``auto`` next time."""
    if search_id.startswith(MEMORY):
        search_id = f"{MEMORY}#{uuid.uuid4().hex}"
    measured = [TrialResult.model_validate_json(t.user_attrs[RESULT_ATTR])
                for t in study.get_trials(deepcopy=False)
                if RESULT_ATTR in t.user_attrs and measured_here(t)]
    reached, best = trials_to_best(measured, objective, constraints)
    knowledge.record_search(search_id, workload=workload_fp, hardware_fp=hardware_fp,
                            sampler=sampler, objective=objective, measured=len(measured),
                            trials_to_best=reached, best=best)


def warm_start(study: Any, suggester: Suggester, workload: Workload, *,
               store: KnowledgeStore, workload_fp: WorkloadFingerprint,
               hardware_fp: dict[str, Any], hardware: str, objectives: list[str],
               constraints: Sequence[Constraint]) -> dict[str, int]:
    """Add priors and store the transfer plan; return counts of each."""
    added = 0
    similar = []
    for neighbour in store.nearest(workload_fp, hardware_fp, NEIGHBOURS):
        if neighbour.same_as(workload_fp, hardware_fp, workload.sha256):
            added += _add_priors(study, suggester, workload, store.results(neighbour),
                                 objectives, constraints, hardware)
        else:
            similar.append(neighbour)
    ranked = ranked_transfers(store, similar, objectives[0], constraints, workload=workload,
                              hardware=hardware, suggester=suggester,
                              fragility=workload_fp.fragility)[:PLAN_SIZE]
    if ranked:
        study.set_user_attr(PLAN_ATTR, [t.as_dict() for t in ranked])
    return {"priors": added, "planned": len(ranked)}


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

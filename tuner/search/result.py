"""What a search found: :class:`OptimizationResult`, read back from its study.

:func:`summarise` builds the result from what the study holds, so a resumed search reports
every trial it has; :func:`best_of` and :func:`pareto_front` rank feasible results by the
objectives' directions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner.search.breakdown import where_time_went
from tuner.search.study import PRIOR_ATTR, RESULT_ATTR, SOURCE_ATTR
from tuner.trial.constraints import Constraint, feasible, parse_constraints, unmet, violations
from tuner.trial.results import METRIC_DIRECTIONS, TrialResult, TrialState

NEAREST = 3
CONFIRMATION_KEY = "confirmation"  # in the JSON's ``best``, beside the TrialResult's fields


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
    # Trials by outcome and reason with their time (:func:`tuner.search.breakdown`).
    time_by_outcome: list[dict[str, Any]] = field(default_factory=list)
    # The side-by-side re-measurement the best comes from (:mod:`tuner.search.confirm`).
    confirmation: dict[str, Any] | None = None

    @property
    def n_trials(self) -> int:
        return len(self.results)

    @property
    def n_failed(self) -> int:
        """Trials that failed (build, measurement, executor); not those a gate stopped
        (``infeasible``, ``pruned``), which ``time_by_outcome`` counts apart."""
        return sum(r.state is TrialState.FAILED for r in self.results)

    @property
    def trials(self):
        import pandas as pd

        return pd.DataFrame([r.flat() | {"knowledge_source": self.knowledge.get(r.trial_id)}
                             for r in self.results])

    @property
    def pareto(self):
        import pandas as pd

        return pd.DataFrame([r.flat() for r in self.front])

    def confirm(self, confirmation: dict[str, Any]) -> None:
        """Take the best from ``confirmation``: the candidate whose re-measured median is
        best. Where no candidate's re-measurement held up, the search's best stays, and
        the confirmation record says none was confirmed."""
        self.confirmation = confirmation
        by_id = {r.trial_id: r for r in self.feasible}
        self.best = by_id.get(confirmation.get("best_trial_id") or "", self.best)

    def as_dict(self) -> dict[str, Any]:
        dump = lambda r: r.model_dump(mode="json") if r else None  # noqa: E731
        best = dump(self.best)
        if best is not None and self.confirmation is not None:
            best[CONFIRMATION_KEY] = self.confirmation
        return {"study": self.study, "storage": self.storage, "objectives": self.objectives,
                "constraints": self.constraints, "baseline": dump(self.baseline),
                "best": best, "pareto": [dump(r) for r in self.front],
                "nearest": [{"trial": dump(n["trial"]), "unmet": n["unmet"]}
                            for n in self.nearest],
                "trials": [dump(r) for r in self.results], "n_trials": self.n_trials,
                "n_feasible": len(self.feasible), "n_failed": self.n_failed,
                "sampler": self.sampler, "sampler_reason": self.sampler_reason,
                "knowledge": self.knowledge, "time_by_outcome": self.time_by_outcome}

    def export(self, out_dir: Path | str, pick: str = "best", *, force: bool = False) -> Path:
        """Write the picked trial's artifact as a bundle that runs without Podium
        (:mod:`tuner.trial.bundle`); ``pick``: ``best``, a trial id or ``pareto:N``."""
        from tuner.trial.bundle import export_bundle

        record, confirmation = pick_record(self.as_dict(), pick)
        return export_bundle(record, Path(out_dir), force=force, confirmation=confirmation,
                             baseline=self.baseline, source=f"study {self.study} ({pick})")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OptimizationResult:
        """Read back :meth:`as_dict` (an ``optimize --json`` file)."""
        load = lambda r: TrialResult.model_validate(  # noqa: E731
            {k: v for k, v in r.items() if k != CONFIRMATION_KEY}) if r else None
        results = [load(r) for r in data.get("trials") or []]
        by_id = {r.trial_id: r for r in results}
        best = data.get("best")
        pick = lambda r: by_id.get(r["trial_id"]) or load(r)  # noqa: E731
        result = cls(study=data.get("study", ""), storage=data.get("storage", ""),
                     objectives=list(data["objectives"]),
                     constraints=list(data.get("constraints") or []),
                     baseline=load(data.get("baseline")), results=results,
                     best=pick(best) if best else None,
                     front=[pick(r) for r in data.get("pareto") or []],
                     knowledge=dict(data.get("knowledge") or {}),
                     sampler=data.get("sampler", ""),
                     sampler_reason=data.get("sampler_reason", ""),
                     time_by_outcome=list(data.get("time_by_outcome") or []),
                     confirmation=(best or {}).get(CONFIRMATION_KEY))
        result.feasible = feasible(results, parse_constraints(result.constraints))
        return result

    def to_json(self, path: Path | str | None = None) -> str:
        text = json.dumps(self.as_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text


def pick_record(result: dict[str, Any], pick: str) -> tuple[TrialResult, dict[str, Any] | None]:
    """The trial ``pick`` names in a result's JSON form (:meth:`OptimizationResult.as_dict`):
    ``best``, ``pareto:N`` (1 is the front's first) or a trial id (a unique prefix will do);
    with the confirmation record where the pick is the confirmed best.

    Raises:
        InputError: nothing matches, or the result has no best/front to pick from.
    """
    from tuner.errors import InputError

    best = result.get("best")
    if pick == "best":
        if not best:
            raise InputError("the result has no best trial (no feasible trial): pick one by "
                             "its id, or pareto:N")
        record = dict(best)
    elif pick.startswith("pareto:"):
        front = result.get("pareto") or []
        try:
            record = dict(front[int(pick.partition(":")[2]) - 1])
            if int(pick.partition(":")[2]) < 1:
                raise IndexError
        except (ValueError, IndexError):
            raise InputError(f"{pick!r}: the Pareto front has {len(front)} trial(s); say "
                             f"pareto:1 … pareto:{len(front)}") from None
    else:
        records = {r["trial_id"]: r for r in [*(result.get("trials") or []),
                                              *([result["baseline"]] if result.get("baseline")
                                                else [])] if r}
        matches = [tid for tid in records if tid.startswith(pick)] if len(pick) >= 6 else []
        if len(matches) != 1:
            what = "is ambiguous" if matches else "matches no trial of this result"
            raise InputError(f"{pick!r} {what}: pick best, pareto:N or a trial id "
                             "(at least 6 characters)")
        record = dict(records[matches[0]])
    confirmation = record.pop(CONFIRMATION_KEY, None)
    if confirmation is None and best and best.get("trial_id") == record["trial_id"]:
        confirmation = best.get(CONFIRMATION_KEY)
    return TrialResult.model_validate(record), confirmation


def rank_key(result: TrialResult, objective: str) -> float:
    """Sort key: better results first on ``objective``, those without a value last."""
    value = result.metric(objective)
    sign = 1.0 if METRIC_DIRECTIONS[objective] == "minimize" else -1.0
    return sign * value if value is not None else float("inf")


def best_of(results: list[TrialResult], objective: str) -> TrialResult | None:
    ranked = sorted(results, key=lambda r: (rank_key(r, objective), r.started_at))
    return ranked[0] if ranked else None


def pareto_front(results: list[TrialResult], objectives: list[str]) -> list[TrialResult]:
    """Non-dominated results over ``objectives`` (ties on every objective all kept)."""
    points = [(r, [rank_key(r, o) for o in objectives]) for r in results]
    front = []
    for result, values in points:
        dominated = any(all(o <= v for o, v in zip(other, values, strict=True))
                        and any(o < v for o, v in zip(other, values, strict=True))
                        for _, other in points)
        if not dominated:
            front.append(result)
    return sorted(front, key=lambda r: rank_key(r, objectives[0]))


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
        feasible=good, best=best_of(good, objectives[0]), nearest=nearest,
        front=pareto_front(good, objectives), knowledge=sources,
        time_by_outcome=where_time_went(results, constraints))


def load_result(name: str, storage: str) -> OptimizationResult:
    """The result of the stored study ``name`` (finished or not), as ``optimize`` reports
    it, with its confirmation when the search got that far.

    Raises:
        InputError: no such study in ``storage``, or it was not made by ``optimize``.
    """
    import optuna

    from tuner.errors import InputError, one_line

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except Exception as exc:
        raise InputError(f"no study {name!r} in {storage}: {one_line(exc)}") from None
    identity = study.user_attrs.get("identity")
    if not identity:
        raise InputError(f"study {name!r} in {storage} was not made by podium optimize")
    baseline = study.user_attrs.get("baseline")
    result = summarise(study, name, storage, list(identity["objectives"]),
                       parse_constraints(identity["constraints"]),
                       TrialResult.model_validate_json(baseline) if baseline else None)
    confirmation = study.user_attrs.get(CONFIRMATION_KEY)
    if confirmation:
        result.confirm(confirmation)
    return result


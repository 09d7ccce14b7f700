"""Warm start: begin a new search from what the knowledge store already knows.

Two ways past results help, depending on how alike the past search is:

* the same workload (its content hash: the same graph with other weights computes other
  numbers) on the same hardware (fingerprint hash): its results are facts about this very
  search, so they are added to the study as finished *prior* trials (``knowledge_prior``)
  — the sampler's model starts informed and a suggestion equal to one of them is answered
  without measuring again;
* a similar workload or other hardware: its configurations are *transferred* onto the new
  space, ranked, and the best few measured first, picked one at a time (see below)
  (``knowledge_source`` on the trial says from where).

The ranking pools the nearest pairs. Each neighbour rates every configuration it measured
by its objective relative to the neighbour's best (1.0 = the best it measured), and a
configuration's score is the similarity-weighted mean of those ratios. Three choices matter:

* the pooled ranking, not each neighbour's top few: one neighbour's optimum is often a
  noisy pick among near-equals, while what did well across relatives tends to do well on
  the new model too;
* a configuration that broke a constraint on the neighbour keeps its objective ratio,
  times a penalty (:func:`miss_penalty`), instead of being ruled out: the fingerprint
  describes the graph, which predicts speed, but accuracy under int8 depends on the
  weights, so a relative's accuracy loss is weaker evidence than its latency. A quality
  miss costs what the same miss measured here costs in :func:`next_transfer`, growing with
  its size; a flat 1.5 for every miss put a fast int8 scheme that missed by 3 % ahead of
  one missing by 0.3 %, so on a random-weight MLP where only one per-channel scheme passes
  (gen-mlp-wide) the plan's first pick failed by 2.5 % and ended the plan. Graded, the
  leave-one-out grids (three passes, 27 workloads) went from 45 warm trials to 40
  (gen-mlp-wide 7 → 2; gen-trained-slim −1, gen-mlp-tall −1, gen-conv-narrow and
  gen-attention-small +1); a fifth held-out batch, added before it was measured, was
  unchanged by it. Only a failed trial counts as ``MISS_RATIO``.
* a relative's quality loss is first seen as this workload would see it
  (:func:`quality_here`): int8 loses quality by flipping rows whose top two scores are
  close, so a loss within the relative's share of such *fragile* rows is scaled by the
  ratio of this workload's share to the relative's (the flip rate transfers, not the
  loss). A trained model with wide margins (digits: none fragile) is not held back by a
  random-weight relative whose int8 flipped 3 % of its rows; on the leave-one-out grids
  this took digits from 4 trials to 1 and changed nothing else (42 trials against cold's
  84), the same with fragile margins of 0.05, 0.1 or 0.2 row deviations. It first capped
  the loss at this workload's share instead, which held back a trained model with 1.2 %
  fragile rows (gen-trained-wide: 1.2 % is over a 1 % bound) though int8 flipped none of
  them; as a rate (its relatives lose about a tenth of their fragile rows) that model went
  from 5 trials to 2 on the two-pass grids, and no other workload changed. Five models
  added afterwards as a held-out check (two of them trained) and a third grid pass: warm 49
  → 45 trials over 27 workloads (cold 78), gen-trained-deep 4 → 1.

In offline replays of the leave-one-out grids of ``bench/warm_start.py`` (random search as
the cold baseline), ruling infeasible ones out cost about a tenth of the saving, and
per-neighbour top lists lost to a cold search.

The ranked configurations are not enqueued all at once: they form the search's *transfer
plan* (a study attribute, so a resumed search goes on with it), and the search loop takes
from it one at a time (:func:`next_transfer`), each pick informed by what this search has
measured so far. A relative's speed transfers well; whether the numbers survive int8 is a
property of this model's weights, and this search's own measurements are the best evidence:

* a configuration computing the same numbers as one that failed a quality constraint here
  (it differs only in threads) is not measured: it would fail the same way;
* a quality miss raises the score of every untried configuration of the same precision
  family by ``exp(QUALITY_MISS_SCALE * shortfall)``: a near miss (0.1 % short, as per-tensor
  int8 on the convnet) keeps the family's other options, a larger one (1 % short) hands
  the next picks to the precisions that passed;
* a configuration whose numbers already passed here keeps its score;
* a static int8 configuration differing only in calibration from one that passed here is
  not measured: it runs the same operators (:func:`~tuner.trial.config.speed_digest`), so it can
  only repeat that speed, and the passed one already answered for accuracy. Without this the
  plan spent its picks on calibration methods of one graph (the encoder: six static int8
  picks before the dynamic one that was 10 % faster here); on the leave-one-out grids it
  took warm from 42 to 40 trials (each point's fastest of two passes), 48 to 45 (their
  means) and 63 to 54 (one pass);
* a planned configuration that misses a quality bound by ``PLAN_REFUTED`` (2 %) or more
  ends the plan: the relatives' ranking put it first and this model's weights refuted it,
  so what is left of the ranking is a guess about accuracy, and the search goes on as a
  cold one would (the strong defaults, then the sampler). Without this, the penalty kept
  the plan going to slower precisions that passed, and constrained TPE, seeing only those
  as feasible, stayed near them: on a random-weight MLP where one per-channel int8 scheme
  passes (gen-mlp-wide) warm took 9 trials to cold's 5; with it, 5.

On the leave-one-out grids of ``bench/warm_start.py`` (the real search loop, replayed), this
took two of the three models where int8 breaks accuracy from 8 and 7 trials to 2; the third
(where one per-channel int8 scheme passes) went from 7 to 8; nothing else changed. Scales
from 30 to 60 gave the same table, 20 a slightly worse one. Three models added afterwards as
a held-out check went 5 → 2, 11 → 12 and 0 → 0 trials (cold → warm); a per-channel-aware
variant of the penalty that fitted the first twelve better did worse on them. The search's
strong defaults wait until the plan is done. The plan-ending threshold works from about 1.5 %
to 2.5 % on the 19 bench workloads and changes only gen-mlp-wide there (at 1 % gen-mlp-mid
costs one trial more; at 3 % gen-mlp-wide's 2.6 % miss no longer ends the plan): read it as
fitted to one model, with the four models added last as knowledge it neither helps nor hurts.

Transfer keeps backend, precision, int8 options, ORT flags, threads and batch; the
variant only within the same workload (sha256 or name), the reference otherwise; the
hardware becomes the new search's target. A configuration the new space does not allow
(:meth:`Suggester.params_for` is None) is dropped.

This module ranks and picks; :mod:`tuner.search.warmstart` adds the priors and the plan to
a new study, and the search loop asks :func:`next_transfer` for each pick.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tuner.errors import ConfigError
from tuner.knowledge.store import KnowledgeStore, Neighbour
from tuner.trial.config import Configuration, numerics_digest, speed_digest
from tuner.trial.constraints import QUALITY_METRICS, Constraint, feasible, quality_shortfall
from tuner.trial.results import METRIC_DIRECTIONS, TrialResult
from workloads.base import Workload

NEIGHBOURS = 3
TRANSFERS = 6  # configurations measured from the plan
PLAN_SIZE = 48  # ranked configurations kept in the plan to pick from
QUALITY_MISS_SCALE = 40.0  # a quality miss by a fraction s of its bound: family scores × e^40s
INFEASIBLE_PENALTY = 1.5  # least ratio factor of an unstable result or a non-quality miss
PLAN_REFUTED = 0.02  # a planned configuration this far short of a quality bound ends the plan
MISS_RATIO = 4.0  # how a failed configuration rates (and the cap of every ratio)


class Suggester(Protocol):
    """What a transfer needs of the search it feeds (:class:`tuner.search.study.Suggester`
    is one): the Optuna params that suggest ``config`` there, None where its space does
    not allow ``config``."""

    def params_for(self, config: Configuration) -> dict[str, Any] | None: ...


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


@dataclass(frozen=True)
class Transfer:
    """One planned configuration: Optuna params, its score (lower is better), its source."""

    config: Configuration
    params: dict[str, Any]
    score: float
    label: str

    def as_dict(self) -> dict[str, Any]:
        return {"config": self.config.as_dict(), "params": self.params, "score": self.score,
                "label": self.label}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Transfer:
        return cls(Configuration.parse(raw["config"]), raw["params"], raw["score"],
                   raw["label"])


def next_transfer(plan: Sequence[Transfer], known: Sequence[TrialResult],
                  constraints: Sequence[Constraint], taken: set[str]) -> Transfer | None:
    """The plan's best configuration given what this search ``known``s (measured results
    and priors); None when nothing untaken and worth measuring is left, or when a planned
    configuration clearly failed quality here (the plan is refuted)."""
    passed: set[str] = set()
    timed: set[str] = set()  # speed digests of configurations that passed here
    failed: set[str] = set()
    penalty: dict[tuple[Any, ...], float] = {}
    planned = {t.config.digest() for t in plan}
    for result in known:
        if not result.quality_known:
            continue
        config = Configuration.parse(result.config)
        shortfall = quality_shortfall(constraints, result)
        if shortfall <= 0:
            passed.add(numerics_digest(config))
            timed.add(speed_digest(config))
            continue
        if shortfall >= PLAN_REFUTED and config.digest() in planned:
            return None
        failed.add(numerics_digest(config))
        family = _family(config)
        penalty[family] = penalty.get(family, 1.0) * miss_penalty(
            shortfall, otherwise_infeasible=False)
    live = [t for t in plan if t.config.digest() not in taken
            and numerics_digest(t.config) not in failed
            and speed_digest(t.config) not in timed]

    def score(t: Transfer) -> tuple[float, str]:
        factor = (1.0 if numerics_digest(t.config) in passed
                  else penalty.get(_family(t.config), 1.0))
        return t.score * factor, t.config.digest()

    return min(live, key=score, default=None)


def _family(config: Configuration) -> tuple[Any, ...]:
    """Configurations whose accuracy tends to move together: one model, one backend, one
    kind of precision (every int8 scheme is one family; fp16 and fp32 are their own)."""
    kind = "int8" if config.precision.is_int8 else config.precision.value
    return config.variant, config.backend, kind, config.hardware


def ranked_transfers(store: KnowledgeStore, neighbours: Sequence[Neighbour], objective: str,
                     constraints: Sequence[Constraint], *, workload: Workload, hardware: str,
                     suggester: Suggester, fragility: float | None = None) -> list[Transfer]:
    """Every configuration the neighbours measured that applies here, best score first,
    labelled with the most similar neighbour that measured it; ``fragility`` is this
    workload's (see :func:`quality_here`)."""
    minimize = METRIC_DIRECTIONS[objective] == "minimize"
    ratings: dict[str, list[tuple[float, float]]] = {}  # digest → (similarity, ratio)
    found: dict[str, tuple[Configuration, dict[str, Any], str]] = {}
    for neighbour in neighbours:
        known = store.results(neighbour)
        here = [quality_here(r, fragility, neighbour.fragility) for r, _ in known]
        otherwise_ok = {r.trial_id for r in feasible(here, [c for c in constraints
                                                        if c.metric not in QUALITY_METRICS])}
        price = {r.trial_id: miss_penalty(quality_shortfall(constraints, r),
                                          otherwise_infeasible=r.trial_id not in otherwise_ok)
                 for r in here}
        values = {r.trial_id: r.metric(objective) for r, _ in known if r.ok}
        values = {k: v for k, v in values.items() if v is not None and v > 0}
        if not values:
            continue
        best = min(values.values()) if minimize else max(values.values())
        own: dict[str, float] = {}  # each configuration once per neighbour: its best ratio
        for result, source in known:
            mapped = transfer(result, workload=workload, hardware=hardware,
                              suggester=suggester)
            if mapped is None:
                continue
            value = values.get(result.trial_id)
            ratio = MISS_RATIO if value is None else (
                (value / best if minimize else best / value) * price[result.trial_id])
            digest = mapped[0].digest()
            own[digest] = min(ratio, own.get(digest, MISS_RATIO))
            found.setdefault(digest, (*mapped, _label(neighbour, source)))
        for digest, ratio in own.items():
            ratings.setdefault(digest, []).append((neighbour.similarity, ratio))
    score = {d: sum(w * r for w, r in rated) / sum(w for w, _ in rated)
             for d, rated in ratings.items()}
    return [Transfer(*found[d][:2], score[d], found[d][2])
            for d in sorted(score, key=lambda d: (score[d], d)) if score[d] < MISS_RATIO]


def miss_penalty(shortfall: float, *, otherwise_infeasible: bool) -> float:
    """What a relative's result costs its ratio: nothing (1.0) when every constraint holds;
    a quality miss by a fraction ``shortfall`` of its bound costs
    ``exp(QUALITY_MISS_SCALE * shortfall)``, the price :func:`next_transfer` puts on a miss
    measured here (1.5 at a 1 % miss, 3.3 at 3 %), where it uses this function too; an
    unstable result or another broken constraint costs ``INFEASIBLE_PENALTY`` at least."""
    quality = math.exp(QUALITY_MISS_SCALE * min(shortfall, 1.0)) if shortfall > 0 else 1.0
    return max(quality, INFEASIBLE_PENALTY) if otherwise_infeasible else quality


def quality_here(result: TrialResult, own: float | None,
                 theirs: float | None) -> TrialResult:
    """A relative's result with its quality loss as this workload would see it.

    ``own`` and ``theirs`` are the fragile shares of the two workloads' fp32 outputs (rows a
    small numeric change can flip). A loss no larger than the relative's fragile share is
    explained by flipped fragile rows; what transfers is the *rate* at which they flip, so
    the loss here is the loss there times ``own / theirs``. On the leave-one-out grids that
    rate is steady: int8 loses 0.07-0.17 of the fragile share on every random-weight model
    (median over its int8 configurations), 0-0.1 on the trained ones. A larger loss (the
    numbers broke, not a few rows flipped) and a result whose fragilities are unknown
    transfer as measured.
    """
    ratio = result.metrics.quality_ratio if result.quality_known else None
    if own is None or theirs is None or ratio is None or not 0.0 < 1.0 - ratio <= theirs:
        return result
    here = (1.0 - ratio) * own / theirs
    update = {"quality_ratio": 1.0 - here}
    if result.metrics.quality is not None and ratio > 0:
        update["quality"] = result.metrics.quality * (1.0 - here) / ratio
    return result.model_copy(update={"metrics": result.metrics.model_copy(update=update)})


def _label(neighbour: Neighbour, source: str) -> str:
    return (f"{source}: {neighbour.workload_name} on {neighbour.hardware_profile} "
            f"(similarity {neighbour.similarity:.2f})")

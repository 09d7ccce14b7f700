"""Trial stage: one configuration of one workload, validated, built, measured and recorded.

Owns ``run`` (:func:`~tuner.trial.run.run_trial`, which chains the rest and turns any
failure into a FAILED record), ``build`` (transforms + backend in a worker process, and the
artifact cache), ``worker`` (the process entry, ``python -m tuner.trial.worker``),
``subprocess_runner`` (starting, limiting and reading that process), ``measure`` (the
measurement protocol, MEASUREMENT.md), ``quality_cache`` (an artifact's quality, scored once)
and the export of a trial as a bundle that runs without Podium: ``bundle`` (writing and
opening one), ``bundle_predict`` (its ``predict.py``, standalone) and ``bundle_verify``
(``podium export --verify``).

It also owns the records every stage speaks: ``config`` (:class:`Configuration`, what to
build and run), ``results`` (:class:`TrialResult`, the schema the leaderboard stores too)
and ``constraints`` (the bounds a result is judged by, in a search, a warm start and a
tournament). Backends, transforms and the leaderboard read them, so those three modules
import only :mod:`tuner.errors` and the backend contract (``tuner.backends.base`` and
``registry``, whose declarations the Configuration validates with) — the architecture test
holds them to the ``records`` layer, below every stage but above the contract.

May import: :mod:`tuner.knowledge` (a record carries its workload's fingerprint; no
cycle), :mod:`tuner.backends`, :mod:`tuner.transforms`, :mod:`tuner.hardware`,
:mod:`tuner.errors` and ``workloads``. Never :mod:`tuner.search` or :mod:`tuner.cli`.
"""

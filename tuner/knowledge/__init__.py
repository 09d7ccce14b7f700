"""Knowledge stage: what past searches learned, and how a new search starts from it.

Owns ``store`` (:class:`~tuner.knowledge.store.KnowledgeStore`: every past TrialResult by
workload and hardware fingerprint, and one line per cold search), ``fingerprint`` (a
workload's graph summary and similarity, the hardware hash), ``transfer`` (ranking the
neighbours' configurations into a warm start's plan and picking the next one),
``selftune`` (which sampler ``auto`` means) and ``pull`` (a leaderboard's verified results,
through :mod:`tuner.client`, into the store).

It decides *what* to start from; putting it into an Optuna study is the search's job
(:mod:`tuner.search.warmstart`), so nothing here knows Optuna or the search's space: a
transfer asks only for something with ``params_for`` (the ``Suggester`` protocol in
``transfer``).

May import: :mod:`tuner.trial` (its records), :mod:`tuner.backends` (the TVM tuning
database it exports and imports), :mod:`tuner.hardware`, :mod:`tuner.errors`,
:mod:`tuner.client` and ``workloads``. Never :mod:`tuner.search` or :mod:`tuner.cli`.
"""

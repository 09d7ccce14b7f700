"""Search stage: ``optimize()``, a constrained multi-objective search over a workload's space.

Owns ``optimize`` (the entry point, re-exported as :func:`tuner.optimize`, and the request
check the CLI runs first), ``space`` (the conditional space of configurations), ``study``
(the Optuna study, samplers, suggestions, what a finished trial tells), ``warmstart``
(starting a fresh study from the knowledge store, and feeding it back), ``loop`` (ask →
submit → collect → tell), ``executor`` (trials as Ray tasks on the hardware they target),
``replay`` (an executor answering from a measured table, for benchmarks and fast tests) and
``result`` (:class:`~tuner.search.result.OptimizationResult`, the feasible best and the
Pareto front, read back from a study or a JSON file), ``confirm`` and ``breakdown`` (the
side-by-side re-measurement of the best, where the time went) and ``report`` (the search
as one self-contained HTML file).

May import: :mod:`tuner.knowledge`, :mod:`tuner.trial`, :mod:`tuner.backends`,
:mod:`tuner.transforms`, :mod:`tuner.hardware`, :mod:`tuner.errors` and ``workloads``.
Never :mod:`tuner.cli`. Optuna and Ray are imported inside the functions that use them.
"""

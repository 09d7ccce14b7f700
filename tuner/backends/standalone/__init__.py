"""Runtimes that open an artifact with nothing but numpy and the engine's own package.

One module per engine, each defining ``open_session(folder, runtime) -> session``: the
session has ``input_names``, ``run(inputs) -> list[np.ndarray]`` (the timed call),
``close()`` and ``details`` (what the engine says it compiled). ``runtime`` is the JSON
block of every option the session is opened with (threads included), exactly as an
exported bundle's ``inference.json`` carries it.

These are the code a measuring worker runs (a backend's ``load`` calls them) *and* the code
``podium export`` ships: each module is copied verbatim into the bundle as
``podium_runtime.py``, beside ``predict.py``. So what a user deploys opens the model the
way it was timed, by construction. That is why a module here imports only the standard
library, numpy and its engine, never ``tuner`` or ``workloads`` (tests/test_export.py checks
it), and why each is one self-contained file.
"""

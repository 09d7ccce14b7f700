"""CLI stage: the ``podium`` command, a Typer app with one module per command group.

``app`` (the console script is ``tuner.cli:main``, imported when called) joins the groups
and maps every :class:`~tuner.errors.PodiumError` to its exit code
(2 for bad input) with one line on stderr. The groups: ``workloads``, ``hardware``,
``backends``, ``trial``, ``optimize``, ``knowledge``, ``tournament`` (with ``register`` and
``submit``), ``verify`` (``reproduce`` and ``referee``), ``export``, ``report`` and
``demo``; ``inputs`` and
``output`` are what they share (resolving a workload from options; the Rich consoles and
tables), and
``userconfig`` is the user's leaderboard URL and credentials, which only commands read.

May import every stage below it (search, knowledge, trial, hardware, …) and, lazily, the
leaderboard: the CLI is the one place the engine and the leaderboard meet (``podium
leaderboard …``, the demo's server). Nothing in the engine imports the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner.cli.app import main

__all__ = ["main"]


def __getattr__(name: str) -> Any:
    if name == "main":
        from tuner.cli.app import main

        return main
    raise AttributeError(f"module 'tuner.cli' has no attribute {name!r}")

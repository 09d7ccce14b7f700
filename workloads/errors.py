"""The root of Podium's error tree: the part workloads raise.

``workloads`` is the bottom layer, so the base of every deliberate error lives here and
the engine's tree (:mod:`tuner.errors`, which draws the whole tree and adds the engine's
errors) builds on it; both name these classes, which are the same objects.

::

    PodiumError                      any error Podium raises on purpose
    └── InputError                   the user's input is wrong (CLI exit 2, HTTP 4xx)
        └── WorkloadError            unknown workload, bad ONNX file, npz that does not fit

Messages are one line, name the problem and, where it helps, the valid choices.
"""

from __future__ import annotations

__all__ = ["InputError", "PodiumError", "WorkloadError", "one_line"]


class PodiumError(Exception):
    """Base of every error Podium raises deliberately."""

    exit_code = 1


class InputError(PodiumError):
    """The user's input is wrong; nothing was built, cached or written."""

    exit_code = 2


class WorkloadError(InputError):
    """A workload cannot be found, built or validated."""


def one_line(error: BaseException) -> str:
    """Return ``error`` as a single line, for CLI messages and failure reasons."""
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())

"""Podium's error tree, mapped to CLI exit codes and HTTP statuses in one place.

::

    PodiumError                      any error Podium raises on purpose
    ├── InputError                   the user's input is wrong (CLI exit 2, HTTP 4xx)
    │   ├── WorkloadError            unknown workload, bad ONNX file, npz that does not fit
    │   ├── ConfigError              unknown key/value, invalid combination of options
    │   ├── HardwareError            unknown or malformed hardware profile, target not here
    │   └── ConstraintError          a constraint expression that does not parse
    ├── TrialFailed                  a build or measurement failed (crash, timeout, NaN)
    └── SubmissionRejected           the leaderboard refused a submission

``PodiumError``, ``InputError``, ``WorkloadError`` and :func:`one_line` are defined in
:mod:`workloads.errors` (workloads sit below the engine and raise them too) and are the
same objects here. Messages are one line, name the problem and, where it helps, the valid
choices.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workloads.errors import InputError, PodiumError, WorkloadError, one_line

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = ["ConfigError", "ConstraintError", "HardwareError", "InputError", "PodiumError",
           "SubmissionRejected", "TrialFailed", "WorkloadError", "describe_validation",
           "one_line"]


class ConfigError(InputError):
    """A configuration key, value or combination is invalid."""


class HardwareError(InputError):
    """A hardware profile is unknown, malformed, or not available here."""


class ConstraintError(InputError):
    """A constraint expression does not parse or names an unknown metric."""


class TrialFailed(PodiumError):
    """A trial's build or measurement failed; ``stage`` says which."""

    exit_code = 1

    def __init__(self, message: str, *, stage: str = "trial") -> None:
        super().__init__(message)
        self.stage = stage


class SubmissionRejected(PodiumError):
    """The leaderboard refused a submission; ``reasons`` lists every failed check."""

    exit_code = 2

    def __init__(self, message: str, *, reasons: list[str] | None = None) -> None:
        super().__init__(message)
        self.reasons = list(reasons or [])


def describe_validation(error: ValidationError, *, unknown_key_hint: str = "") -> str:
    """Pydantic's multi-line report as one line: ``loc: message; loc: message``.

    ``unknown_key_hint`` replaces pydantic's "Extra inputs are not permitted" (e.g. with
    the list of valid keys).
    """
    parts = []
    for item in error.errors():
        loc = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden" and unknown_key_hint:
            message = unknown_key_hint
        parts.append(f"{loc}: {message}" if loc else message)
    return "; ".join(parts)

"""Where a model's inputs and outputs carry the batch: which axis, or none at all.

Podium slices a dataset by rows — calibration rows, evaluation chunks, the timed batch —
and most models take every input with the batch on axis 0. Real ones do not always: a
recurrent model's state is ``[layers, batch, hidden]``, a sample rate is an int64 scalar
given once for every call, some exporters fix the batch at 1. A :class:`Layout` records
per input the batch axis, or that the input is a *constant* (not batched, fed whole to
every call), and per output its batch axis (or none) and whether quality scores it.

Everything inside Podium keeps data **canonical**: batched arrays with the batch on axis 0,
constants kept apart. :meth:`Layout.feed` turns canonical rows into what the model takes,
and :meth:`Layout.wrap` makes a model's run function canonical on both sides, so the
chunking, padding and scoring code never needs to know about axes.

:mod:`workloads.batch_axes` works a layout out from the model's declared shapes and the
user's data, taking what the user said (``--inputs`` / ``--outputs``) first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workloads.errors import WorkloadError

CONSTANT = "constant"
UNSCORED = "unscored"
Run = Callable[[dict[str, np.ndarray]], list[np.ndarray]]
# What a user may say about one input or output: a batch axis, "constant" or "unscored".
Hint = int | str


@dataclass(frozen=True)
class Layout:
    """How a model's inputs and outputs carry the batch.

    ``inputs`` maps each model input to its batch axis, ``None`` for a constant;
    ``outputs`` maps each model output (in the model's order) to its batch axis, ``None``
    for an output that does not grow with the batch (never scored). ``unscored`` names
    batched outputs the user left out of quality. An empty ``outputs`` means "axis 0 for
    every output", the layout of every built-in workload.
    """

    inputs: dict[str, int | None]
    outputs: dict[str, int | None] = field(default_factory=dict)
    unscored: tuple[str, ...] = ()
    constants: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    # Inputs whose batch went to axis 0 by convention where other axes had as many rows
    # (the tied axes): a model that then fails, or stops following the batch, was guessed
    # wrong, and the error names the flag. Not stored: the stored layout is what was used.
    guessed: dict[str, tuple[int, ...]] = field(default_factory=dict, compare=False,
                                                repr=False)

    @classmethod
    def batch_first(cls, names: list[str]) -> Layout:
        """Every input batched on axis 0 (the layout of a built-in workload)."""
        return cls({name: 0 for name in names})

    @property
    def is_batch_first(self) -> bool:
        return (all(axis == 0 for axis in self.inputs.values())
                and all(axis == 0 for axis in self.outputs.values()) and not self.unscored)

    @property
    def batched(self) -> list[str]:
        return [name for name, axis in self.inputs.items() if axis is not None]

    def scored(self, n_outputs: int) -> list[int]:
        """Indices of the outputs quality scores: batched and not left out by the user."""
        if not self.outputs:
            return list(range(n_outputs))
        return [i for i, (name, axis) in enumerate(self.outputs.items())
                if axis is not None and name not in self.unscored]

    def feed(self, rows: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The model's inputs for canonical ``rows`` (batch on axis 0) plus the constants."""
        if self.is_batch_first and not self.constants:
            return dict(rows)
        feed = {name: (rows[name] if axis == 0
                       else np.ascontiguousarray(np.moveaxis(rows[name], 0, axis)))
                for name, axis in self.inputs.items() if axis is not None}
        return feed | self.constants

    def canonical(self, outputs: list[np.ndarray], rows: int) -> list[np.ndarray]:
        """Model outputs with the batch moved to axis 0; an output without a batch axis is
        repeated per row, so chunks still concatenate (it is never scored)."""
        if not self.outputs or all(axis == 0 for axis in self.outputs.values()):
            return outputs
        result = []
        for out, axis in zip(outputs, self.outputs.values(), strict=True):
            out = np.asarray(out)
            if axis is None:
                result.append(np.broadcast_to(out, (rows, *out.shape)))
            else:
                result.append(out if axis == 0 else np.moveaxis(out, axis, 0))
        return result

    def wrap(self, run: Run) -> Run:
        """``run`` taking canonical rows and returning canonical outputs."""
        if self.is_batch_first and not self.constants:
            return run

        def canonical_run(rows: dict[str, np.ndarray]) -> list[np.ndarray]:
            return self.canonical(run(self.feed(rows)), count_rows(rows))

        return canonical_run

    def guess_hint(self) -> str:
        """Why a model may have failed on an axis-0 guess, and the flag that settles it."""
        name, tied = next(iter(self.guessed.items()))
        return (f"with input {name!r} batched on axis 0, which dims {list(tied)} could all be "
                f"(as many rows each); {FLAG_HINT.format(name=name)}")

    def as_dict(self) -> dict[str, Any]:
        """JSON form for the workload manifest (constants live in the data file)."""
        return {"inputs": dict(self.inputs), "outputs": dict(self.outputs),
                "unscored": list(self.unscored)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any],
                  constants: Mapping[str, np.ndarray] | None = None) -> Layout:
        return cls(inputs=dict(data["inputs"]), outputs=dict(data.get("outputs", {})),
                   unscored=tuple(data.get("unscored", ())), constants=dict(constants or {}))


def count_rows(rows: Mapping[str, np.ndarray]) -> int:
    """Rows of canonical data (every batched array has them on axis 0)."""
    return len(next(iter(rows.values())))


def parse_hints(text: str | None, *, kind: str) -> dict[str, Hint]:
    """``'state:batch_axis=1,sr:constant'`` → ``{"state": 1, "sr": "constant"}``.

    ``kind`` is ``inputs`` (words: ``constant``) or ``outputs`` (words: ``unscored``);
    ``axis=K`` is accepted as short for ``batch_axis=K``.
    """
    word = CONSTANT if kind == "inputs" else UNSCORED
    usage = f"--{kind} takes NAME:batch_axis=K or NAME:{word}, comma-separated"
    hints: dict[str, Hint] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, what = item.strip().rpartition(":")
        what = what.strip().lower().replace(" ", "")
        if not sep or not name:
            raise WorkloadError(f"{usage}; got {item.strip()!r}")
        if what == word:
            hints[name] = word
            continue
        key, _, value = what.partition("=")
        if key not in ("batch_axis", "axis") or not value.lstrip("-").isdigit():
            raise WorkloadError(f"{usage}; got {item.strip()!r}")
        hints[name] = int(value)
    return hints


def check_hints(hints: Mapping[str, Hint], names: list[str], *, kind: str) -> dict[str, Hint]:
    """Refuse hints that name nothing, or say something other than an axis or the word."""
    word = CONSTANT if kind == "inputs" else UNSCORED
    unknown = sorted(set(hints) - set(names))
    if unknown:
        raise WorkloadError(f"--{kind} names {unknown}, which the model does not have "
                            f"(its {kind}: {names})")
    for name, hint in hints.items():
        if not (hint == word or (isinstance(hint, int) and not isinstance(hint, bool))):
            raise WorkloadError(f"--{kind} {name}: say batch_axis=K or {word}, not {hint!r}")
    return dict(hints)


@dataclass(frozen=True)
class Declared:
    """One model input or output as declared: name, dtype and dims (``int`` fixed, ``str``
    a named dynamic dim, ``None`` an unnamed one: ``-1``, ``0`` or no value)."""

    name: str
    dims: tuple[int | str | None, ...]

    def dynamic(self, axis: int) -> bool:
        return not isinstance(self.dims[axis], int)

    def shown(self) -> list[Any]:
        return [d if isinstance(d, int) else "?" for d in self.dims]


FLAG_HINT = "say which with --inputs '{name}:batch_axis=K' or '{name}:constant'"

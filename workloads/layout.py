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

:func:`infer_inputs` and :func:`infer_outputs` work a layout out from the model's declared
shapes and the user's data, taking what the user said (``--inputs`` / ``--outputs``) first;
what the data cannot decide is refused with the one flag that resolves it.
"""

from __future__ import annotations

from collections import Counter
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
                f"(as many rows each); {_FLAG.format(name=name)}")

    def as_dict(self) -> dict[str, Any]:
        """JSON form for the workload manifest (constants live in the data file)."""
        return {"inputs": dict(self.inputs), "outputs": dict(self.outputs),
                "unscored": list(self.unscored)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any],
                  constants: Mapping[str, np.ndarray] | None = None) -> Layout:
        return cls(inputs=dict(data["inputs"]), outputs=dict(data.get("outputs", {})),
                   unscored=tuple(data.get("unscored", ())), constants=dict(constants or {}))

    def describe(self) -> str:
        """One line for humans, e.g. ``x: batch axis 0, state: batch axis 1, sr: constant``."""
        parts = [f"{name}: {'constant' if axis is None else f'batch axis {axis}'}"
                 for name, axis in self.inputs.items()]
        parts += [f"output {name}: {self._output_word(name, axis)}"
                  for name, axis in self.outputs.items() if axis != 0 or name in self.unscored]
        return ", ".join(parts)

    def _output_word(self, name: str, axis: int | None) -> str:
        if axis is None:
            return "not batched, unscored"
        return f"batch axis {axis}" + (", unscored" if name in self.unscored else "")


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


_FLAG = "say which with --inputs '{name}:batch_axis=K' or '{name}:constant'"


def infer_inputs(declared: list[Declared], arrays: Mapping[str, np.ndarray],
                 hints: Mapping[str, Hint], *, model: str, data: str) -> tuple[Layout, int]:
    """Each input's batch axis (or constant) from the declared dims, the data and ``hints``.

    The rules, in order: what the user said; a declared scalar is a constant; a candidate
    batch axis is a dynamic dim, or a fixed one the data does not match (a model exported
    with a fixed batch); the row count is the size at axis 0 where the inputs agree on it
    (axis 0 is the convention), else the one size every input has at a candidate axis; a
    tie between axes goes to axis 0, then to a dim named like another input's batch dim.

    Returns:
        The input layout (constants included) and the number of rows.

    Raises:
        WorkloadError: a shape the model cannot take, or an ambiguity, naming the flag.
    """
    candidates: dict[str, list[int]] = {}
    axes: dict[str, int | None] = {}
    for spec in declared:
        array = arrays[spec.name]
        hint = hints.get(spec.name)
        if hint == CONSTANT or (hint is None and not spec.dims and array.ndim == 0):
            _check_constant(spec, array, model=model, data=data)
            axes[spec.name] = None
            continue
        if not spec.dims:
            raise WorkloadError(f"input {spec.name!r} of {model} is a scalar, so it cannot "
                                f"take a batch: give one value (a 0-d array) in {data}, "
                                f"not {list(array.shape)}")
        if array.ndim != len(spec.dims):
            raise WorkloadError(f"input {spec.name!r}: {data} has shape {list(array.shape)}, "
                                f"{model} expects {spec.shown()}")
        if isinstance(hint, int):
            if not 0 <= hint < array.ndim:
                raise WorkloadError(f"--inputs {spec.name}:batch_axis={hint} is outside its "
                                    f"{array.ndim} dims {spec.shown()}")
            axes[spec.name] = hint
        candidates[spec.name] = [a for a in range(array.ndim)
                                 if spec.dynamic(a) or array.shape[a] != spec.dims[a]]
    fixed = [spec.name for spec in declared if spec.name not in axes
             and not candidates.get(spec.name, [0])]
    if len(fixed) == len(declared):  # a model exported for exactly as many rows as given
        axes |= dict.fromkeys(fixed, 0)
    else:
        axes |= dict.fromkeys(fixed)  # every dim fixed and matched: given whole to every call
    rows = _row_count(declared, arrays, axes, candidates, data=data)
    ties = []
    for spec in declared:
        if spec.name not in axes:
            axes[spec.name] = _batch_axis(spec, arrays[spec.name], candidates[spec.name], rows,
                                          data=data)
            if axes[spec.name] is None:
                ties.append(spec)
    names_at_batch = {spec.dims[axes[spec.name]] for spec in declared
                      if axes[spec.name] is not None and spec.dims
                      and isinstance(spec.dims[axes[spec.name]], str)}
    for spec in ties:
        axes[spec.name] = _named_axis(spec, arrays[spec.name], candidates[spec.name], rows,
                                      names_at_batch, data=data)
    for spec in declared:
        _check_matches(spec, arrays[spec.name], axes[spec.name], rows, model=model, data=data)
    if all(axis is None for axis in axes.values()):
        raise WorkloadError(f"no input of {model} carries a batch (all constant): Podium "
                            f"needs rows to evaluate; {_FLAG.format(name=declared[0].name)}")
    constants = {name: arrays[name] for name, axis in axes.items() if axis is None}
    guessed = {spec.name: tuple(tied) for spec in declared
               if spec.name not in hints and axes[spec.name] == 0
               and len(tied := tied_axes(arrays[spec.name], candidates.get(spec.name, []),
                                         rows)) > 1}
    return Layout(inputs={spec.name: axes[spec.name] for spec in declared},
                  constants=constants, guessed=guessed), rows


def _check_constant(spec: Declared, array: np.ndarray, *, model: str, data: str) -> None:
    if array.ndim != len(spec.dims) or any(
            isinstance(want, int) and got != want
            for got, want in zip(array.shape, spec.dims, strict=True)):
        raise WorkloadError(f"input {spec.name!r} is given once for every call: {data} has "
                            f"shape {list(array.shape)}, {model} expects {spec.shown()}")


def _row_count(declared: list[Declared], arrays: Mapping[str, np.ndarray],
               axes: Mapping[str, int | None], candidates: Mapping[str, list[int]], *,
               data: str) -> int:
    pinned = {arrays[name].shape[axis] for name, axis in axes.items() if axis is not None}
    if len(pinned) > 1:
        raise WorkloadError(f"the batch axes given with --inputs have different sizes in "
                            f"{data}: {sorted(pinned)}")
    if pinned:
        return pinned.pop()
    open_inputs = [spec.name for spec in declared if spec.name not in axes]
    sizes = {name: {arrays[name].shape[a] for a in candidates[name]} for name in open_inputs}
    common = set.intersection(*sizes.values()) if sizes else set()
    first_axis = {arrays[name].shape[0] for name in open_inputs if 0 in candidates[name]}
    if len(first_axis) == 1 and first_axis <= common:
        return first_axis.pop()
    if len(common) == 1:
        return common.pop()
    shown = {name: [arrays[name].shape[a] for a in candidates[name]] for name in open_inputs}
    if not common:
        counts = Counter(size for name in open_inputs for size in sizes[name])
        likely = counts.most_common(1)[0][0]
        odd = next(name for name in open_inputs if likely not in sizes[name])
        raise WorkloadError(f"arrays in {data} have different batch sizes {shown}; if {odd!r} "
                            f"is given once for every call, say --inputs '{odd}:constant', if "
                            f"it is batched on another axis, --inputs '{odd}:batch_axis=K'")
    raise WorkloadError(f"cannot tell the number of rows in {data}: the inputs' dynamic dims "
                        f"{shown} agree on {sorted(common)}; "
                        f"{_FLAG.format(name=open_inputs[0])}")


def _batch_axis(spec: Declared, array: np.ndarray, candidates: list[int], rows: int, *,
                data: str) -> int | None:
    """The one candidate axis with ``rows`` rows (axis 0 winning a tie); None for a tie
    between other axes, which :func:`_named_axis` may settle."""
    matching = tied_axes(array, candidates, rows)
    if not matching:
        raise WorkloadError(f"input {spec.name!r}: no dim of its shape {list(array.shape)} in "
                            f"{data} has the {rows} rows the other inputs have; "
                            f"{_FLAG.format(name=spec.name)}")
    if len(matching) == 1 or 0 in matching:
        return matching[0]
    return None


def tied_axes(array: np.ndarray, candidates: list[int], rows: int) -> list[int]:
    """The candidate batch axes of ``array`` that have ``rows`` rows."""
    return [a for a in candidates if array.shape[a] == rows]


def _named_axis(spec: Declared, array: np.ndarray, candidates: list[int], rows: int,
                names_at_batch: set[Any], *, data: str) -> int:
    """Settle a tie by the dim named like another input's batch dim (``batch_size``)."""
    matching = [a for a in candidates if array.shape[a] == rows]
    named = [a for a in matching if spec.dims[a] in names_at_batch]
    if len(named) == 1:
        return named[0]
    raise WorkloadError(f"input {spec.name!r}: dims {matching} of {list(array.shape)} all have "
                        f"{rows} rows; {_FLAG.format(name=spec.name)}")


def _check_matches(spec: Declared, array: np.ndarray, axis: int | None, rows: int, *,
                   model: str, data: str) -> None:
    """Every dim but the batch must be what the model declares (dynamic ones take any)."""
    if axis is None:
        _check_constant(spec, array, model=model, data=data)
        return
    if array.shape[axis] != rows:
        raise WorkloadError(f"input {spec.name!r} has {array.shape[axis]} rows on its batch "
                            f"axis {axis} in {data}, the others have {rows}")
    for a, (got, want) in enumerate(zip(array.shape, spec.dims, strict=True)):
        if a != axis and isinstance(want, int) and got != want:
            raise WorkloadError(f"input {spec.name!r}: {data} has shape {list(array.shape)}, "
                                f"{model} expects {spec.shown()}")


def fixed_batch(declared: list[Declared], layout: Layout) -> int | None:
    """The batch the model was exported with, where its batch dims are fixed; else None."""
    for spec in declared:
        axis = layout.inputs.get(spec.name)
        if axis is not None and axis < len(spec.dims) and isinstance(spec.dims[axis], int):
            return spec.dims[axis]
    return None


def infer_outputs(layout: Layout, run: Run, rows: Mapping[str, np.ndarray],
                  names: list[str], hints: Mapping[str, Hint], *, batch: int | None,
                  model: str) -> Layout:
    """Each output's batch axis, found by running the model on one and on two rows (or, for
    a model with a fixed batch, by the dims that have the batch's size).

    Args:
        layout: the input layout.
        run: the model's run function (model feeds in, outputs out).
        rows: canonical rows to run (at least two).
        names: the model's output names, in order.
        hints: what the user said (``NAME: K`` or ``NAME: "unscored"``).
        batch: the model's fixed batch, or None.
        model: the model's file name, for messages.
    """
    axes: dict[str, int | None] = {}
    if batch is None:
        one = run(layout.feed({k: v[:1] for k, v in rows.items()}))
        two = run(layout.feed({k: v[:2] for k, v in rows.items()}))
        shapes = zip(names, (np.shape(a) for a in one), (np.shape(b) for b in two), strict=True)
        found = {name: [ax for ax, (x, y) in enumerate(zip(a, b, strict=False)) if (x, y) == (1, 2)]
                 for name, a, b in shapes}
    else:
        outs = run(layout.feed({k: v[:batch] for k, v in rows.items()}))
        found = {name: [ax for ax, size in enumerate(np.shape(o)) if size == batch]
                 for name, o in zip(names, outs, strict=True)}
    for name in names:
        hint = hints.get(name)
        if isinstance(hint, int):
            axes[name] = hint
            continue
        options = found[name]
        if not options:
            axes[name] = None
        elif len(options) == 1 or 0 in options:
            axes[name] = options[0]
        else:
            raise WorkloadError(f"output {name!r} of {model}: dims {options} all follow the "
                                f"batch; say which with --outputs '{name}:batch_axis=K' "
                                f"(or '{name}:unscored')")
    lost = [name for name in names if axes[name] is None and name not in hints]
    if lost and layout.guessed:
        raise WorkloadError(f"output {lost[0]!r} of {model} does not follow the batch "
                            f"{layout.guess_hint()}")
    unscored = tuple(name for name in names if hints.get(name) == UNSCORED)
    result = Layout(inputs=layout.inputs, outputs=axes, unscored=unscored,
                    constants=layout.constants, guessed=layout.guessed)
    if not result.scored(len(names)):
        raise WorkloadError(f"no output of {model} is scored: every output is unscored or "
                            "does not follow the batch")
    return result

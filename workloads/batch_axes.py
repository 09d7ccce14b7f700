"""Working out a user model's :class:`~workloads.layout.Layout` from its declared dims and
the user's data: which axis of each input carries the batch (or none: a constant), how many
rows the data has, and which axis of each output follows the batch.

What the user said (``--inputs`` / ``--outputs``) comes first; what is unambiguous is
inferred; what the data cannot decide is refused with the one flag that settles it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from workloads.errors import WorkloadError
from workloads.layout import CONSTANT, FLAG_HINT, UNSCORED, Declared, Hint, Layout, Run


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
                            f"needs rows to evaluate; {FLAG_HINT.format(name=declared[0].name)}")
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
                        f"{FLAG_HINT.format(name=open_inputs[0])}")


def _batch_axis(spec: Declared, array: np.ndarray, candidates: list[int], rows: int, *,
                data: str) -> int | None:
    """The one candidate axis with ``rows`` rows (axis 0 winning a tie); None for a tie
    between other axes, which :func:`_named_axis` may settle."""
    matching = tied_axes(array, candidates, rows)
    if not matching:
        raise WorkloadError(f"input {spec.name!r}: no dim of its shape {list(array.shape)} in "
                            f"{data} has the {rows} rows the other inputs have; "
                            f"{FLAG_HINT.format(name=spec.name)}")
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
                        f"{rows} rows; {FLAG_HINT.format(name=spec.name)}")


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

"""Resolving a workload from CLI options: ``--workload NAME`` or ``--model F --data F``,
with ``--inputs`` / ``--outputs`` for what the data cannot say about a model's batch."""

from __future__ import annotations

from pathlib import Path

import typer

from tuner.errors import InputError
from workloads.base import Workload

INPUTS_HELP = ("what the data cannot say, per input: 'state:batch_axis=1,sr:constant' "
               "(batch on another axis than 0; given whole to every call)")
OUTPUTS_HELP = ("per output: 'stateN:unscored' (left out of quality) or "
                "'NAME:batch_axis=K'")


def inputs_option() -> str | None:
    return typer.Option(None, "--inputs", help=INPUTS_HELP)


def outputs_option() -> str | None:
    return typer.Option(None, "--outputs", help=OUTPUTS_HELP)


def resolve_workload(name: str | None, model: Path | None, data: Path | None, *,
                     inputs: str | None = None, outputs: str | None = None) -> Workload:
    import workloads
    from workloads.layout import parse_hints

    if model is not None or data is not None:
        if name is not None:
            raise InputError("give either --workload or --model/--data, not both")
        if model is None or data is None:
            raise InputError("--model and --data go together")
        return workloads.from_files(model, data, inputs=parse_hints(inputs, kind="inputs"),
                                    outputs=parse_hints(outputs, kind="outputs"))
    if inputs or outputs:
        raise InputError("--inputs and --outputs describe a user model: give --model/--data")
    return workloads.get(name or workloads.DEFAULT_WORKLOAD)

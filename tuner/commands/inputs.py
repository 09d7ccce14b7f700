"""Resolving a workload from CLI options: ``--workload NAME`` or ``--model F --data F``."""

from __future__ import annotations

from pathlib import Path

from tuner.errors import InputError
from workloads.base import Workload


def resolve_workload(name: str | None, model: Path | None, data: Path | None) -> Workload:
    import workloads

    if model is not None or data is not None:
        if name is not None:
            raise InputError("give either --workload or --model/--data, not both")
        if model is None or data is None:
            raise InputError("--model and --data go together")
        return workloads.from_files(model, data)
    return workloads.get(name or workloads.DEFAULT_WORKLOAD)

"""``podium workloads …``: the built-in workloads, what can be tuned."""

from __future__ import annotations

import typer
from rich.table import Table

from tuner.cli.output import console

workloads_app = typer.Typer(help="Built-in workloads.", no_args_is_help=True)


@workloads_app.command("list")
def list_workloads(build: bool = typer.Option(False, help="build (or load) each workload "
                                              "and show its variants and hash")) -> None:
    """List the built-in workloads."""
    import workloads
    from workloads.registry import recipe

    table = Table(title="workloads")
    for column in ("name", "metric", "description", "variants", "sha256"):
        table.add_column(column)
    for name in workloads.names():
        spec = recipe(name)
        if build:
            wl = workloads.get(name)
            variants = ", ".join(f"{v}{'*' if v == wl.reference else ''}" for v in wl.variants)
            table.add_row(name, str(spec.metric), spec.description, variants, wl.sha256[:16])
        else:
            table.add_row(name, str(spec.metric), spec.description, "(--build)", "")
    console.print(table)

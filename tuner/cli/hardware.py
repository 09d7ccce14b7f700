"""``podium hardware …``: the hardware profiles a search can target."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from tuner.cli.output import console

hardware_app = typer.Typer(help="Hardware profiles (targets).", no_args_is_help=True)


@hardware_app.command("list")
def list_hardware() -> None:
    """List the hardware profiles (``local`` is detected from this machine)."""
    from tuner.hardware import load_profile, profile_names

    profiles = [load_profile(name) for name in profile_names()]
    table = Table(title="hardware profiles")
    # Names are what users type: never cut; the description wraps to what is left.
    table.add_column("name", no_wrap=True, min_width=max(len(p.name) for p in profiles))
    table.add_column("cores")
    table.add_column("ray resource", overflow="fold")
    table.add_column("price USD/h")
    table.add_column("power W (idle–TDP)")
    table.add_column("description", ratio=1)
    for p in profiles:
        price = f"{p.price.usd_per_hour:.4g}" if p.price else "—"
        table.add_row(p.name, str(p.cores), p.ray_resource, price,
                      f"{p.power.idle_w:g}–{p.power.tdp_w:g}", p.description)
    console.print(table)


@hardware_app.command("show")
def show_hardware(name: str) -> None:
    """Show one profile in full, with its fingerprint and the precisions each backend runs
    natively on its ISA."""
    from tuner.backends.registry import backend_class, backend_names
    from tuner.hardware import fingerprint, load_profile

    profile = load_profile(name)
    precisions = {backend: list(backend_class(backend).precisions_for(profile.isa))
                  for backend in backend_names()}
    console.print_json(json.dumps(profile.as_dict() | {"fingerprint": fingerprint(profile),
                                                       "precisions": precisions},
                                  default=str))

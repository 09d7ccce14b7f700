"""Shared terminal output: the Rich consoles and the TrialResult table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from tuner.trial.results import METRIC_DIRECTIONS, METRIC_UNITS, TrialResult

console = Console()
errors = Console(stderr=True)

_ARROWS = {"minimize": "↓", "maximize": "↑"}


def format_value(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def trial_table(result: TrialResult) -> Table:
    """The configuration and every metric with its unit, direction and source."""
    table = Table(title=f"trial {result.trial_id[:12]} · {result.workload.name} · "
                        f"{result.hardware.profile} · {result.state}")
    table.add_column("field")
    table.add_column("value", justify="right")
    table.add_column("unit / note")
    for key, value in result.config.items():
        if value is not None:
            table.add_row(f"config.{key}", format_value(value), "")
    if not result.ok:
        table.add_row("error", f"[red]{result.error}[/red]", result.failed_stage or "")
        return table
    metrics = result.metrics
    for name, unit in METRIC_UNITS.items():
        note = f"{_ARROWS[METRIC_DIRECTIONS[name]]} {unit}"
        if name in ("power_w", "energy_mj_per_inference"):
            note += f" ({metrics.power_source})"
        if name == "cost_per_million_usd":
            note += f" (price: {metrics.price_source})"
        table.add_row(name, format_value(getattr(metrics, name)), note)
    table.add_row("stability", str(metrics.stability), f"cv={format_value(metrics.cv)}")
    cache = "cache hit" if result.artifact.get("cache_hit") else "built"
    table.add_row("artifact", result.artifact.get("key", "")[:12], cache)
    return table

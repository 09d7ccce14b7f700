"""Shared terminal output: the Rich consoles and the TrialResult table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from tuner.trial.results import METRIC_DIRECTIONS, METRIC_UNITS, TrialResult

console = Console()
errors = Console(stderr=True)

_ARROWS = {"minimize": "↓", "maximize": "↑"}


# Column headers that fit an 80-column terminal (the full names are in the README's glossary).
SHORT_METRICS = {"latency_p50_ms": "p50 ms", "latency_p90_ms": "p90 ms",
                 "latency_p99_ms": "p99 ms", "latency_mean_ms": "mean ms",
                 "throughput_per_s": "items/s", "quality": "quality", "quality_ratio": "q/fp32",
                 "model_size_bytes": "bytes", "peak_rss_bytes": "rss bytes", "build_s": "build s",
                 "tune_s": "tune s", "power_w": "W", "energy_mj_per_inference": "mJ/item",
                 "cost_per_million_usd": "$/1M"}


def short_metric(name: str) -> str:
    """A metric's column header: short where it has a short form, with its direction."""
    return f"{SHORT_METRICS.get(name, name)} {_ARROWS[METRIC_DIRECTIONS[name]]}"


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

"""Shared terminal output: the Rich consoles, ``--wide``, configuration cells and the
TrialResult table.

Tables fit the terminal by default (80 columns: short metric headers, short option labels,
cells that wrap); ``--wide`` prints every option under its full name at the table's natural
width, for a wide terminal or a pager (``| less -S``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tuner.backends.options import CORE_KEYS
from tuner.trial.results import METRIC_DIRECTIONS, METRIC_UNITS, TrialResult

console = Console()
errors = Console(stderr=True)

_ARROWS = {"minimize": "↓", "maximize": "↑"}
_wide = False


def _set_wide(value: bool) -> bool:
    global _wide
    _wide = bool(value)
    return value


def wide_option() -> Any:
    """``--wide`` for a command that prints tables."""
    return typer.Option(False, "--wide", callback=_set_wide,
                        help="every option under its full name; tables at their natural "
                             "width (for a wide terminal or | less -S)")


def is_wide() -> bool:
    return _wide


def print_table(renderable: Any) -> None:
    """Print to the console: as it fits the terminal, or with ``--wide`` at its natural width
    (nothing folded; the terminal wraps what is wider than it)."""
    if not _wide:
        console.print(renderable)
        return
    natural = console.measure(renderable, options=console.options.update(width=1_000)).maximum
    terminal = console.width
    console.width = max(natural, terminal)  # Console.print never renders wider than this
    try:
        console.print(renderable, crop=False)
    finally:
        console.width = terminal


def option_label(key: str) -> str:
    """``key``'s label in a table: the short one its backend declares (``ops`` for
    ``int8_op_types``), or the key itself with ``--wide`` or where none is declared."""
    from tuner.backends.registry import declared_option

    if _wide:
        return key
    option = declared_option(key)
    return option.short if option is not None and option.short else key


def config_cell(config: dict[str, Any], options: set[str] | None = None) -> str:
    """A configuration for a table cell: its core keys on one line and, on the next, its
    other options (with ``--wide`` all of them; else those in ``options``, under short
    labels: the ones that tell the table's rows apart)."""
    from tuner.search.report import describe

    head = describe(config, set())
    rest = [f"{option_label(k)}={_option_value(v)}" for k, v in sorted(config.items())
            if k not in CORE_KEYS and v is not None and (_wide or options is None or k in options)]
    return "\n".join([head, " ".join(rest)]) if rest else head


def _option_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) or "—"
    return str(value)


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


def duration(seconds: float) -> str:
    """``45 s``, ``3 min 05 s``, ``1 h 02 min``: a clock a person reads at a glance."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@contextmanager
def working(description: str, expected_s: float | None = None) -> Iterator[None]:
    """A spinner with the time spent on ``description`` and, where known, what it took
    before (``expected_s``: the record's own build and measure time), gone when done."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    expected = f"(took ~{duration(expected_s)} when recorded)" if expected_s else ""
    with Progress(SpinnerColumn(), TextColumn(escape(description)), TimeElapsedColumn(),
                  TextColumn(expected), console=console, transient=True) as progress:
        progress.add_task(description, total=None)
        yield


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

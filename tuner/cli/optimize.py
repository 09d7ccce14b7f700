"""``podium optimize``: the constrained multi-objective search, with a live display.

Exit codes: 0 a feasible configuration was found, 3 nothing feasible (the closest trials
and the constraints they miss are printed), 2 bad input.
"""

from __future__ import annotations

import json
import statistics
import textwrap
import time
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from tuner.cli.inputs import inputs_option, outputs_option, resolve_workload
from tuner.cli.output import (
    config_cell,
    console,
    duration,
    errors,
    format_value,
    print_table,
    short_metric,
    wide_option,
)
from tuner.search.report import describe as describe_config
from tuner.search.report import varying

NOTHING_FEASIBLE = 3


def _describe(config: Any) -> str:
    """A running Configuration's core keys in one line (the report's format)."""
    return describe_config(config.as_dict(), set())


def _describe_record(result: Any) -> str:
    """A trial's core keys in one line (the report's format, without its options)."""
    return describe_config(result.config, set())


class LiveView:
    """Trials done / budget with the time spent and an estimate of what is left, what runs
    where and for how long (against what trials like it took), best feasible so far,
    failures. Re-rendered four times a second, so the clocks tick between events."""

    def __init__(self, budget: int | None, objective: str) -> None:
        self.budget, self.objective = budget, objective
        self.state: dict[str, Any] = {"finished": 0, "running": [], "best": None, "failures": 0}
        self.recent: list[str] = []
        self.started = time.monotonic()
        self.since: dict[str, float] = {}  # running configuration digest → first seen running
        self.took: dict[tuple[str, str], list[float]] = {}  # (backend, precision) → walls
        self.live = Live(self, console=console, refresh_per_second=4, transient=False)

    def __call__(self, event: dict[str, Any]) -> None:
        self.state = event
        now = time.monotonic()
        running = {config.digest() for config in event["running"]}
        self.since = {d: self.since.get(d, now) for d in running}
        if "result" in event:
            result = event["result"]
            wall = result.wall_s
            if wall > 0:
                key = (str(result.config.get("backend")), str(result.config.get("precision")))
                self.took.setdefault(key, []).append(wall)
            value = result.metric(self.objective) if result.ok else None
            # Its state (failed, infeasible, pruned) and why, shortened at a word boundary:
            # a reason cut mid-number ("floor 0.9" for 0.98) would say something false.
            error = (result.error or "").removeprefix(f"{result.state}: ")  # said once
            why = textwrap.shorten(error, width=90, placeholder=" …")
            colour = "red" if result.state == "failed" else "yellow"
            mark = (format_value(value) if result.ok
                    else f"[{colour}]{result.state}: {escape(why)}[/{colour}]")
            label = "baseline" if event["event"] == "baseline" else "trial"
            self.recent = [f"{label} {_describe_record(result)} → {mark}", *self.recent][:5]
        self.live.refresh()

    def __rich__(self) -> Group:
        return self.render()

    def __enter__(self) -> LiveView:
        self.live.start(refresh=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()
        if not console.is_terminal:  # Live ends a terminal's last line, not a log's
            console.line()

    def render(self) -> Group:
        s = self.state
        now = time.monotonic()
        table = Table(show_header=False, box=None)
        budget = self.budget if self.budget is not None else "∞"
        table.add_row("trials", f"{s['finished']} / {budget}  (failures: {s['failures']})")
        table.add_row("time", self._clock(now, s["finished"]))
        for config in s["running"]:
            table.add_row("running", f"{_describe(config)}  on hw:{config.hardware}  "
                                     f"{self._running_for(config, now)}")
        best = s["best"]
        table.add_row(f"best {self.objective}",
                      f"{format_value(best.metric(self.objective))}  "
                      f"({_describe_record(best)})" if best else "— (none feasible yet)")
        if s.get("note"):
            table.add_row("now", s["note"])
        for line in self.recent:
            table.add_row("", line)
        return Group(table)

    def _clock(self, now: float, finished: int) -> str:
        """Time spent, and the trials left at this search's own pace so far (an estimate:
        one slow build can move it)."""
        elapsed = now - self.started
        text = f"{duration(elapsed)} elapsed"
        if self.budget is not None and 0 < finished < self.budget:
            text += f" · ~{duration(elapsed / finished * (self.budget - finished))} left"
        return text

    def _running_for(self, config: Any, now: float) -> str:
        """How long a running trial has taken, and what finished trials of its backend and
        precision took (the estimate of a build, a calibration or a tuning)."""
        start = self.since.get(config.digest())
        text = duration(now - start) if start is not None else ""
        walls = self.took.get((str(config.backend), str(config.precision.value)))
        if walls and text:
            text += f" (such trials took ~{duration(statistics.median(walls))})"
        return text


def optimize_command(
    workload: str | None = typer.Option(None, "--workload", "-w"),
    model: Path | None = typer.Option(None, help="user model, an ONNX file"),
    data: Path | None = typer.Option(None, help="user data, an npz keyed by input names"),
    inputs: str | None = inputs_option(), outputs: str | None = outputs_option(),
    objective: list[str] = typer.Option(["latency_p90_ms"], "--objective", "-o",
                                        help="metric to optimize (repeatable)"),
    constraint: list[str] = typer.Option([], "--constraint", "-c",
                                         help='e.g. "quality_ratio >= 0.99" (repeatable)'),
    hardware: list[str] = typer.Option(["local"], "--hardware", help="target (repeatable)"),
    trials: int | None = typer.Option(None, help="budget of finished trials"),
    timeout: float | None = typer.Option(None, help="budget in seconds"),
    space: str | None = typer.Option(None, help='JSON restriction, e.g. {"backend": "ort"}'),
    study: str | None = typer.Option(None), storage: str | None = typer.Option(None),
    sampler: str = typer.Option("auto"), seed: int = typer.Option(0),
    ray_address: str | None = typer.Option(None, help="'auto' or an address of a cluster"),
    trial_timeout: float = typer.Option(600.0, help="limit per trial build/measurement, s"),
    json_out: Path | None = typer.Option(None, "--json", help="write the result here"),
    report: Path | None = typer.Option(None, "--report", help="write the HTML report here "
                                                              "(podium report)"),
    submit: str | None = typer.Option(None, "--submit", metavar="SLUG",
                                      help="submit the Pareto front to this tournament"),
    warm_start: bool = typer.Option(True, "--warm-start/--no-warm-start",
                                    help="start from the knowledge store's nearest results"),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="print the search space this request gives and exit"),
    wide: bool = wide_option(),
    prune_factor: float = typer.Option(3.0, "--prune-factor", min=0.0,
                                       help="latency search: stop timing a candidate whose "
                                            "probe p50 exceeds this × the incumbent's p90 "
                                            "(0: time every candidate in full)"),
    measure_cap: float = typer.Option(60.0, "--measure-cap", min=0.0,
                                      help="a trial's measurement budget, s (quality and "
                                           "timing; at least 2× the baseline's measurement; "
                                           "0: none)"),
) -> None:
    """Search configurations under constraints; print the best and the Pareto front."""
    from tuner.errors import ConfigError
    from tuner.search.optimize import check_request, optimize, plan_space

    if trials is None and timeout is None:
        trials = 30
    try:
        restriction = json.loads(space) if space else None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--space is not valid JSON: {exc.msg}") from None
    if restriction is not None and not isinstance(restriction, dict):
        raise ConfigError("--space must be a JSON object of dimension → value(s)")
    chosen = resolve_workload(workload, model, data, inputs=inputs, outputs=outputs)
    parsed, profiles = check_request(chosen, objective, constraint, hardware, space=restriction,
                                     sampler=sampler)
    console.print(_space_table(plan_space(chosen, objective, parsed, profiles,
                                          cores=min(p.cores for p in profiles),
                                          space=restriction)))
    if dry_run:
        return
    if submit is not None:  # fail on a bad tournament or key now, not after the search
        from tuner.cli.tournament import open_submission, submit_records

        target = open_submission(submit, chosen)
    view = LiveView(trials, objective[0])
    with view:
        result = optimize(chosen, objective, constraint, hardware, trials=trials,
                          timeout_s=timeout, space=restriction, sampler=sampler, seed=seed,
                          study=study, storage=storage, ray_address=ray_address,
                          trial_timeout_s=trial_timeout, progress=view,
                          warm_start=warm_start, prune_factor=prune_factor or None,
                          measure_cap_s=measure_cap or None)
    if json_out is not None:
        result.to_json(json_out)
    _report(result)
    if report is not None:
        from tuner.search.report import write_report

        console.print(f"report written to {write_report(result, report)}")
    if submit is not None:
        with target:
            submit_records(target, submit, result.front)
    if result.best is None:
        raise typer.Exit(NOTHING_FEASIBLE)


def _space_table(space: Any) -> Table:
    from tuner.search.space import describe

    table = Table(title="search space", show_header=False, title_justify="left")
    table.add_column("dimension", style="bold", no_wrap=True)
    table.add_column("values", overflow="fold")
    for dimension, values in describe(space):
        table.add_row(dimension, values)
    return table


def _time_table(groups: list[dict[str, Any]]) -> Table:
    table = Table(title="where the time went", title_justify="left")
    table.add_column("outcome", no_wrap=True)
    table.add_column("trials", justify="right")
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("reason", overflow="fold")
    total = sum(g["seconds"] for g in groups) or 1.0
    for group in groups:
        table.add_row(group["outcome"], str(group["trials"]),
                      f"{group['seconds']:.0f} s ({group['seconds'] / total:.0%})",
                      group["reason"])
    return table


def _print_confirmation(confirmation: dict[str, Any]) -> None:
    metric = confirmation["metric"]
    table = Table(title=f"confirmation: {confirmation['rounds']} interleaved rounds, each "
                        "measurement in a fresh process", title_justify="left")
    for column in ("trial", f"{metric} by round", "median", "confirmed"):
        table.add_column(column)
    for row in [confirmation["baseline"], *confirmation["candidates"]]:
        label = "baseline" if row is confirmation["baseline"] else row["trial_id"][:8]
        table.add_row(label, ", ".join(format_value(v) for v in row["values"]),
                      format_value(row["median"]), "yes" if row["confirmed"] else "no")
    console.print(table)
    if confirmation["order_changed"]:
        console.print("[yellow]the confirmation reordered the search's best: "
                      f"{' > '.join(t[:8] for t in confirmation['confirmed_order'])} "
                      f"(search: {' > '.join(t[:8] for t in confirmation['search_order'])})"
                      "[/yellow]", soft_wrap=True)


def _report(result: Any) -> None:
    objective = result.objectives[0]
    console.print(f"study [bold]{result.study}[/bold] in {result.storage}: {result.n_trials} "
                  f"trials, {len(result.feasible)} feasible, {result.n_failed} failed, "
                  f"{len(result.knowledge)} from the knowledge store")
    if result.sampler_reason:
        console.print(result.sampler_reason, soft_wrap=True)
    if result.time_by_outcome:
        console.print(_time_table(result.time_by_outcome))
    # Short metric headers and a configuration that wraps, its options that tell the rows
    # apart under short labels: nothing is cut at 80 columns (--wide: every option).
    metrics = list(dict.fromkeys([*result.objectives, "quality_ratio"]))
    options = varying(r.config for r in result.front)
    table = Table(title="Pareto front (feasible)", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("trial", no_wrap=True)
    table.add_column("configuration", overflow="fold", min_width=16)
    for metric in metrics:
        table.add_column(short_metric(metric), justify="right", no_wrap=True)
    table.add_column("stability", no_wrap=True)
    for r in result.front:
        table.add_row(r.trial_id[:8], config_cell(r.config, options),
                      *[format_value(r.metric(m)) for m in metrics], str(r.metrics.stability))
    if result.front:
        print_table(table)
    base = result.baseline.metric(objective) if result.baseline and result.baseline.ok else None
    confirmation = result.confirmation
    if confirmation is not None:
        _print_confirmation(confirmation)
    if result.best is not None:
        best = result.best.metric(objective)
        if confirmation is not None and confirmation.get("speedup"):
            ratio = (f" — confirmed {confirmation['speedup']:.2f}× vs the ORT default over "
                     f"{confirmation['rounds']} interleaved rounds")
        else:
            ratio = (f" — {base / best:.2f}× vs the ORT default ({format_value(base)}), "
                     "not confirmed side by side" if base and best else "")
        console.print(f"[bold green]best {objective}: {format_value(best)}[/bold green] "
                      f"({_describe_record(result.best)}){ratio}")
        return
    errors.print("nothing feasible; closest trials:")
    for item in result.nearest:
        errors.print(f"  {_describe_record(item['trial'])}: {'; '.join(item['unmet'])}")

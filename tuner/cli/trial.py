"""``podium trial run``: build and measure one configuration of one workload."""

from __future__ import annotations

from pathlib import Path

import typer

from tuner.cli.inputs import inputs_option, outputs_option, resolve_workload
from tuner.cli.output import console, errors, trial_table

trial_app = typer.Typer(help="Run single trials.", no_args_is_help=True)


@trial_app.command("run")
def run(
    workload: str | None = typer.Option(None, "--workload", "-w",
                                        help="built-in workload (default: digits)"),
    model: Path | None = typer.Option(None, help="user model, an ONNX file"),
    data: Path | None = typer.Option(None, help="user data, an npz keyed by input names"),
    inputs: str | None = inputs_option(), outputs: str | None = outputs_option(),
    assignments: list[str] = typer.Option([], "--set", "-s",
                                          help="configuration key=value (repeatable)"),
    json_out: Path | None = typer.Option(None, "--json", help="write the TrialResult here"),
    timeout: float = typer.Option(600.0, help="limit for build and measurement, s"),
) -> None:
    """Build and measure one configuration; print the metrics and optionally save JSON."""
    from tuner.trial.config import Configuration, parse_assignments
    from tuner.trial.run import run_trial

    config = Configuration.parse(parse_assignments(assignments))
    chosen = resolve_workload(workload, model, data, inputs=inputs, outputs=outputs)
    with console.status(f"building and measuring on {config.hardware} …"):
        result = run_trial(chosen, config, timeout_s=timeout)
    console.print(trial_table(result))
    if json_out is not None:
        result.to_json(json_out)
        console.print(f"TrialResult written to {json_out}")
    if not result.ok:
        errors.print(f"trial failed ({result.failed_stage}): {result.error}")
        raise typer.Exit(1)

"""``podium report``: a search as one self-contained HTML file (:mod:`tuner.search.report`).

    podium report RESULT.json -o report.html
    podium report --study NAME [--storage URL] -o report.html
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tuner.cli.output import console
from tuner.errors import InputError


def report_command(
    result_json: Path | None = typer.Argument(None, help="an optimize --json result"),
    study: str | None = typer.Option(None, help="report a stored study instead"),
    storage: str | None = typer.Option(None, help="the study's storage URL (default: "
                                                  "PODIUM_HOME's)"),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="the HTML file"),
) -> None:
    """Write a search's report: one HTML file with its plots, that opens offline."""
    from tuner.search.report import write_report
    from tuner.search.result import OptimizationResult, load_result
    from tuner.search.study import default_storage

    if (result_json is None) == (study is None):
        raise InputError("give RESULT.json or --study NAME (one of them)")
    if study is not None:
        result = load_result(study, storage or default_storage())
    else:
        try:
            data = json.loads(result_json.read_text())
            result = OptimizationResult.from_dict(data)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{result_json} is not an optimize --json result: "
                             f"{type(exc).__name__}: {str(exc)[:200]}") from None
    written = write_report(result, out)
    console.print(f"report written to {written} (open it in a browser; it needs no server)")

"""``podium export``: the winner as a bundle that runs without Podium, and ``--verify``.

    podium export RESULT.json OUT_DIR [--pick best|TRIAL_ID|pareto:N] [--force]
    podium export --study NAME [--storage URL] OUT_DIR [--pick …]
    podium export --submission ID_OR_URL OUT_DIR
    podium export --verify OUT_DIR

``RESULT.json`` is what ``optimize --json`` or ``trial run --json`` wrote. Exit codes: 0
done (or verified within tolerance), 2 bad input (nothing written), 4 ``--verify`` outside
tolerance, 1 the bundle did not run.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from tuner.cli.output import console, errors, format_value
from tuner.errors import InputError

OUTSIDE_TOLERANCE = 4


def export_command(
    paths: list[Path] = typer.Argument(..., help="RESULT.json OUT_DIR; OUT_DIR alone with "
                                                 "--study, --submission or --verify"),
    pick: str = typer.Option("best", help="best, a trial id, or pareto:N (1 = first)"),
    study: str | None = typer.Option(None, help="export from this stored study"),
    storage: str | None = typer.Option(None, help="the study's storage URL (default: "
                                                  "PODIUM_HOME's)"),
    submission: str | None = typer.Option(None, help="a leaderboard submission id or URL"),
    force: bool = typer.Option(False, help="replace a non-empty OUT_DIR; export a trial "
                                           "that did not complete (labelled)"),
    verify: bool = typer.Option(False, help="re-check a written bundle here: outputs, "
                                            "quality, latency next to the ORT default"),
    rounds: int = typer.Option(5, min=1, help="--verify: interleaved rounds (3 were too "
                                              "few to judge ±10% on a noisy 2-core VM)"),
    latency_tolerance: float = typer.Option(0.10, help="--verify: relative p90 tolerance"),
    data: Path | None = typer.Option(None, help="--verify: score quality on these rows (an "
                                                "npz by input name, optional labels)"),
) -> None:
    """Write a trial's artifact as a bundle that runs without Podium (or --verify one)."""
    sources = sum(x is not None for x in (study, submission))
    if verify:
        if len(paths) != 1 or sources:
            raise InputError("--verify takes one bundle folder and nothing else")
        _verify(paths[0], rounds=rounds, latency_tolerance=latency_tolerance, data=data)
        return
    if sources > 1:
        raise InputError("give one of RESULT.json, --study or --submission")
    if len(paths) != (1 if sources else 2):
        raise InputError("give RESULT.json OUT_DIR, or OUT_DIR with --study/--submission")
    from tuner.trial.bundle import export_bundle

    out_dir = paths[-1]
    baseline = None
    if study is not None:
        record, confirmation, baseline, source = _from_study(study, storage, pick)
    elif submission is not None:
        record, confirmation, source = _from_submission(submission), None, submission
    else:
        record, confirmation, baseline, source = _from_file(paths[0], pick)
    with console.status(f"exporting trial {record.trial_id[:12]} …"):
        written = export_bundle(record, out_dir, force=force, confirmation=confirmation,
                                baseline=baseline, source=source)
    forced = "" if record.ok else f" [yellow](forced: the trial is {record.state})[/yellow]"
    console.print(f"exported {record.config['backend']} {record.config.get('precision', '')} "
                  f"trial {record.trial_id[:12]} to {written}{forced}")
    console.print(f"  run it:   python {written / 'predict.py'} INPUTS.npz OUT.npz")
    console.print(f"  check it: podium export --verify {written}")


def _from_file(path: Path, pick: str):
    from tuner.search.result import pick_record
    from tuner.trial.results import TrialResult

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path} as a result JSON: {exc}") from None
    if not isinstance(data, dict) or not ("trials" in data or "trial_id" in data):
        raise InputError(f"{path} is neither an optimize result (--json) nor a trial record")
    if "trial_id" in data:  # ``podium trial run --json``: one record, nothing to pick
        return _validated(TrialResult, data, path), None, None, str(path)
    record, confirmation = pick_record(data, pick)
    baseline = _validated(TrialResult, data["baseline"], path) if data.get("baseline") else None
    return record, confirmation, baseline, f"{path} ({pick})"


def _validated(model, data, path):
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{path} is not a valid trial record: "
                         f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None


def _from_study(name: str, storage: str | None, pick: str):
    from tuner.search.result import load_result, pick_record
    from tuner.search.study import default_storage

    storage = storage or default_storage()
    result = load_result(name, storage)
    record, confirmation = pick_record(result.as_dict(), pick)
    return record, confirmation, result.baseline, f"study {name} in {storage} ({pick})"


def _from_submission(target: str):
    from tuner.cli import userconfig
    from tuner.cli.tournament import open_client
    from tuner.cli.verify import parse_target
    from tuner.trial.results import TrialResult

    base, submission_id = parse_target(target, userconfig.load().leaderboard_url)
    with open_client(url=base) as client:
        public = client.submission(submission_id)
    return _validated(TrialResult, public["record"], f"submission {submission_id}")


def _verify(folder: Path, *, rounds: int, latency_tolerance: float,
            data: Path | None) -> None:
    from tuner.trial.bundle_verify import verify_bundle

    with console.status(f"verifying {folder}: {rounds} interleaved rounds beside the ORT "
                        "default …"):
        check = verify_bundle(folder, rounds=rounds, latency_tolerance=latency_tolerance,
                              data=data)
    table = Table(title=f"{folder}: recorded vs here")
    for column in ("figure", "trial", "here"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    on = f" (here: on {data.name})" if data is not None else ""
    table.add_row(f"quality{on}", format_value(check.recorded.get("quality")),
                  format_value(check.quality))
    table.add_row(f"quality_ratio{on}", format_value(check.recorded.get("quality_ratio")),
                  format_value(check.quality_ratio))
    if data is None:
        table.add_row("first call's outputs", "recorded",
                      "match" if check.sample_problem is None else "differ")
    table.add_row("p90 ms", format_value(check.recorded.get("latency_p90_ms")),
                  format_value(check.p90_ms))
    table.add_row("ORT default p90 ms", "—", format_value(check.baseline_ms))
    table.add_row("speed-up vs ORT default (p90)",
                  f"{check.recorded_speedup:.2f}×" if check.recorded_speedup else "—",
                  f"{check.speedup:.2f}×" if check.speedup else "—")
    console.print(table)
    if not check.same_hardware:
        console.print("this CPU is not the one the trial ran on: latency shown, not judged")
    if check.unstable_rounds:
        console.print(f"{check.unstable_rounds} of {rounds} round(s) of the bundle measured "
                      "unstable (a busy machine) and were left out"
                      + ("; latency not judged" if not check.bundle_p90_ms else ""))
    if not check.ok:
        errors.print("not verified: " + "; ".join(check.problems))
        raise typer.Exit(OUTSIDE_TOLERANCE)
    console.print("[green]verified: same outputs and quality, speed within tolerance[/green]")

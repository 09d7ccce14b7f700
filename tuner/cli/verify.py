"""``reproduce`` and ``referee``: re-measure a submitted record and compare with its claim.

Exit codes: 0 within tolerance (latency ±10% or within 5 µs, quality ±0.5 points), 4
outside, 2 bad input (unknown submission, different workload), 1 the re-run failed to build
or measure or its measurement was unstable twice (a busy machine judges nothing).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, replace
from typing import Any

import typer
from rich.table import Table

from tuner.cli import userconfig
from tuner.cli.output import console, errors, format_value, working
from tuner.cli.tournament import get_tournament, local_workload, open_client
from tuner.client import LeaderboardClient
from tuner.errors import InputError, TrialFailed
from tuner.trial.results import TrialResult

OUTSIDE_TOLERANCE = 4
LATENCY_TOLERANCE = 0.10  # relative, re-measured vs claimed
# Absolute, under which a latency difference is noise whatever its ratio: a µs-scale call on
# a shared 2-core VM moves by a few µs between processes (0.018 vs 0.030 ms block medians of
# one digits MLP were measured here), which is ±10% many times over.
LATENCY_FLOOR_MS = 0.005
QUALITY_TOLERANCE = 0.005  # absolute: half a point of accuracy
JUDGED_LATENCY = ("latency_p50_ms", "latency_p90_ms")  # p99 of µs models is too noisy to judge
REFEREE_RUNS = 3  # re-runs the referee makes of a claim before it disputes it
COMPARED = ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "throughput_per_s",
            "quality", "quality_ratio")
_BAD_TARGET = "{target!r} is not a submission id or URL (…/submissions/<uuid>)"


@dataclass(frozen=True)
class Comparison:
    """One metric, claimed vs re-measured; ``ok`` is None where it is not judged."""

    metric: str
    claimed: float | None
    measured: float | None
    ok: bool | None

    @property
    def ratio(self) -> float | None:
        if self.claimed in (None, 0) or self.measured is None:
            return None
        return self.measured / self.claimed


def compare(claimed: TrialResult, measured: TrialResult, *, latency_tolerance: float,
            quality_tolerance: float, one_sided: bool) -> list[Comparison]:
    """Judge latency (relative) and quality (absolute) of a re-run against its claim.

    ``one_sided`` (the referee) only objects when the claim is better than the re-run;
    ``reproduce`` wants the same numbers both ways.
    """
    rows = []
    for name in COMPARED:
        was, now = claimed.metric(name), measured.metric(name)
        ok = None
        if was is not None and now is not None and was > 0:
            if name in JUDGED_LATENCY:
                drift = now / was - 1
                ok = drift <= latency_tolerance if one_sided else abs(drift) <= latency_tolerance
                if not ok and abs(now - was) <= LATENCY_FLOOR_MS:
                    ok = True  # within the noise floor of a µs-scale call
            elif name == "quality":
                delta = now - was
                ok = delta >= -quality_tolerance if one_sided \
                    else abs(delta) <= quality_tolerance
        rows.append(Comparison(name, was, now, ok))
    return rows


def comparison_table(rows: list[Comparison], title: str) -> Table:
    table = Table(title=title)
    for column in ("metric", "claimed", "measured", "ratio", "verdict"):
        table.add_column(column, justify="left" if column in ("metric", "verdict") else "right")
    marks = {True: "[green]within[/green]", False: "[red]outside[/red]", None: "not judged"}
    for r in rows:
        table.add_row(r.metric, format_value(r.claimed), format_value(r.measured),
                      f"{r.ratio:.3f}" if r.ratio is not None else "—", marks[r.ok])
    return table


def remeasure(record: TrialResult, *, timeout_s: float) -> TrialResult:
    """Re-run ``record``'s exact configuration through ``run_trial`` with its protocol.

    Raises:
        WorkloadError: the local workload's content differs from the record's.
        InputError: the configuration cannot run on this node.
        TrialFailed: the re-run failed to build or measure, or its measurement is unstable.
    """
    from tuner.trial.config import Configuration
    from tuner.trial.measure import Protocol
    from tuner.trial.run import packages_for, run_trial

    workload = local_workload(record.workload.name, record.workload.sha256,
                              whose="the submitted record")
    here = packages_for(record.config["backend"])
    drift = [f"{name} {version} → {here.get(name, 'missing')}"
             for name, version in sorted(record.packages.items())
             if name != "podium" and here.get(name) != version]
    if drift:
        errors.print(f"warning: package versions differ from the record: {', '.join(drift)}")
    try:
        protocol = Protocol(**record.measurement.get("protocol", {}))
    except TypeError:
        protocol = Protocol()
    protocol = replace(protocol, reuse_quality=False)  # a claim's quality is scored afresh
    config = Configuration.model_validate(record.config)
    with working(f"re-measuring {record.trial_id[:8]} on {config.hardware}", record.wall_s):
        result = run_trial(workload, config, protocol=protocol, timeout_s=timeout_s,
                           seed=record.seed)
    if not result.ok:
        raise TrialFailed(f"the re-run failed ({result.failed_stage}): {result.error}",
                          stage=result.failed_stage or "trial")
    why = result.instability()
    if why is not None:  # not a measurement to judge a claim by
        raise TrialFailed(f"the re-run's measurement is unstable ({why}), also when "
                          "re-measured; nothing judged: re-run on a quiet machine",
                          stage="measure")
    return result


def parse_target(target: str, default_url: str) -> tuple[str, str]:
    """(base URL, submission id) from an id, an API URL or a website URL."""
    text = target.strip().rstrip("/")
    base = default_url
    if "://" in text:
        head, sep, tail = text.partition("/api/v1/submissions/")
        if not sep:
            head, sep, tail = text.rpartition("/submissions/")
        if not sep:
            raise InputError(_BAD_TARGET.format(target=target))
        base, text = head, tail.split("?")[0]
    try:
        return base, str(uuid.UUID(text))
    except ValueError:
        raise InputError(_BAD_TARGET.format(target=target)) from None


def reproduce_command(
    submission: str = typer.Argument(..., help="a submission id, or its API or website URL"),
    latency_tolerance: float = typer.Option(LATENCY_TOLERANCE, help="relative, e.g. 0.10"),
    quality_tolerance: float = typer.Option(QUALITY_TOLERANCE, help="absolute, e.g. 0.005"),
    timeout: float = typer.Option(600.0, help="limit for the build and measurement, s"),
) -> None:
    """Re-run a submission's configuration here; compare it with the claim (exit 4: outside)."""
    base, submission_id = parse_target(submission, userconfig.load().leaderboard_url)
    with open_client(url=base) as client:
        public = client.submission(submission_id)
    record = TrialResult.model_validate(public["record"])
    result = remeasure(record, timeout_s=timeout)
    rows = compare(record, result, latency_tolerance=latency_tolerance,
                   quality_tolerance=quality_tolerance, one_sided=False)
    console.print(comparison_table(rows, f"submission {submission_id} · {record.workload.name} "
                                         f"· {record.hardware.profile}: claimed vs measured"))
    if any(r.ok is False for r in rows):
        errors.print(f"not reproduced: outside ±{latency_tolerance:.0%} latency / "
                     f"±{quality_tolerance:g} quality")
        raise typer.Exit(OUTSIDE_TOLERANCE)
    console.print("[green]reproduced within tolerance[/green]")


# ---------------------------------------------------------------------------- referee

def referee(client: LeaderboardClient, slug: str, *, top: int, latency_tolerance: float,
            quality_tolerance: float, timeout_s: float) -> list[dict[str, Any]]:
    """Re-measure the top ``top`` not-yet-verified submissions this node can run and post
    a verdict for each; return the posted checks."""
    from tuner.trial.run import node_profiles

    tournament = get_tournament(client, slug)
    local_workload(tournament["workload_name"], tournament["workload_sha256"],
                   whose=f"tournament {slug!r}")
    here = node_profiles()
    checks: list[dict[str, Any]] = []
    for row in client.leaderboard(slug)["data"]:
        if len(checks) >= top:
            break
        if row["is_baseline"] or row["rank"] is None or row["status"] == "verified":
            continue
        label = f"#{row['rank']} {row['submission_id'][:8]} ({row['participant']})"
        if row["hardware_profile"] not in here:
            console.print(f"skipped {label}: hardware {row['hardware_profile']!r} is not on "
                          f"this node (it runs {', '.join(here)})")
            continue
        record = TrialResult.model_validate(client.submission(row["submission_id"])["record"])
        try:
            result, rows, runs = _best_rerun(record, timeout_s=timeout_s,
                                             latency_tolerance=latency_tolerance,
                                             quality_tolerance=quality_tolerance)
        except (InputError, TrialFailed) as exc:
            console.print(f"skipped {label}: {exc}")
            continue
        verdict = "disputed" if any(r.ok is False for r in rows) else "verified"
        if verdict == "disputed" and runs > 1:
            label += f" (best of {runs} re-runs)"
        ratios = ", ".join(f"{r.metric} ×{r.ratio:.2f}" for r in rows
                           if r.ok is not None and r.ratio is not None)
        metrics = {r.metric: r.measured for r in rows
                   if r.measured is not None and math.isfinite(r.measured)}
        checks.append(client.referee(row["submission_id"], metrics=metrics, verdict=verdict,
                                     note=f"re-measured on {result.hardware.node}: {ratios}"))
        colour = "green" if verdict == "verified" else "red"
        console.print(f"[{colour}]{verdict}[/{colour}] {label}: {ratios}")
    return checks


def _best_rerun(record: TrialResult, *, timeout_s: float, latency_tolerance: float,
                quality_tolerance: float) -> tuple[TrialResult, list[Comparison], int]:
    """Re-run ``record`` until a re-run meets its claim, at most :data:`REFEREE_RUNS` times;
    the fastest re-run judges. One process's speed on a shared VM moves by ±30% between
    processes (the same conv net measured 6.8 and 11.5 ms p90 in consecutive rounds, each
    stable within itself), so a single slow re-run is not evidence against a claim; three
    that all miss it are. Returns (the judging re-run, its comparison, re-runs made)."""
    best, rows, runs = None, [], 0
    while runs < REFEREE_RUNS and (best is None or any(r.ok is False for r in rows)):
        result = remeasure(record, timeout_s=timeout_s)
        runs += 1
        if best is None or (result.metric("latency_p90_ms") or math.inf) < (
                best.metric("latency_p90_ms") or math.inf):
            best = result
        rows = compare(record, best, latency_tolerance=latency_tolerance,
                       quality_tolerance=quality_tolerance, one_sided=True)
    return best, rows, runs


def referee_command(
    tournament: str = typer.Option(..., "--tournament", "-t", help="tournament slug"),
    top: int = typer.Option(3, min=1, help="how many not-yet-verified submissions"),
    latency_tolerance: float = typer.Option(LATENCY_TOLERANCE, help="relative, e.g. 0.10"),
    quality_tolerance: float = typer.Option(QUALITY_TOLERANCE, help="absolute, e.g. 0.005"),
    timeout: float = typer.Option(600.0, help="limit per re-measurement, s"),
) -> None:
    """Re-measure the top submissions on this node and post verdicts (admin token)."""
    with open_client(admin=True) as client:
        checks = referee(client, tournament, top=top, latency_tolerance=latency_tolerance,
                         quality_tolerance=quality_tolerance, timeout_s=timeout)
    console.print(f"{len(checks)} verdict(s) posted to {client.url}/tournaments/{tournament}")

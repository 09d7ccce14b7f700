"""Tournament commands: ``register``, ``tournament create|list|show``, ``submit``,
``reproduce`` and ``referee`` — the CLI side of the leaderboard API.

Exit codes: 0 done, 2 bad input (unknown tournament, wrong workload, missing key, server
down, a rejected submission — with every checker reason), 4 ``reproduce`` measured
something outside the tolerance, 1 a re-run failed to build or measure.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from tuner import userconfig
from tuner.client import LeaderboardClient, LeaderboardRefused
from tuner.commands.output import console, errors, format_value
from tuner.errors import InputError, SubmissionRejected, TrialFailed, WorkloadError
from tuner.results import TrialResult

OUTSIDE_TOLERANCE = 4
LATENCY_TOLERANCE = 0.10  # relative, re-measured vs claimed
QUALITY_TOLERANCE = 0.005  # absolute: half a point of accuracy
JUDGED_LATENCY = ("latency_p50_ms", "latency_p90_ms")  # p99 of µs models is too noisy to judge
COMPARED = ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "throughput_per_s",
            "quality", "quality_ratio")

_NO_TOURNAMENT = "no tournament {slug!r} at {url} (list them with `podium tournament list`)"
_BAD_RESULT = "{path} is not an optimize or `trial run` JSON: {reason}"
_NO_TRIAL = "no trial {pick!r} in {path} (choose best, pareto or a trial id)"
_AMBIGUOUS = "trial id {pick!r} matches {n} trials in {path}; give more characters"
_HASH_MISMATCH = ("workload {name!r} here has sha256 {local}…, {whose} has {claimed}…: "
                  "not the same workload, so numbers measured here cannot be compared")
_BAD_TARGET = "{target!r} is not a submission id or URL (…/submissions/<uuid>)"
_SUBMISSIONS_REJECTED = "{n} of {total} submission(s) rejected: {reasons}"

tournament_app = typer.Typer(help="Create, list and show leaderboard tournaments.",
                             no_args_is_help=True)


def open_client(*, url: str | None = None, key: bool = False,
                admin: bool = False) -> LeaderboardClient:
    """A client for the configured leaderboard; ``key``/``admin`` demand that credential."""
    config = userconfig.load()
    return LeaderboardClient(url or config.leaderboard_url,
                             api_key=config.require_key() if key else config.api_key,
                             admin_token=config.require_admin() if admin else config.admin_token)


def get_tournament(client: LeaderboardClient, slug: str) -> dict[str, Any]:
    try:
        return client.tournament(slug)
    except LeaderboardRefused as exc:
        if exc.status == 404:
            raise InputError(_NO_TOURNAMENT.format(slug=slug, url=client.url)) from None
        raise


def local_workload(name: str, sha256: str, *, whose: str) -> Any:
    """The built-in workload ``name``, refusing it unless its content hash is ``sha256``."""
    import workloads

    workload = workloads.get(name)
    if workload.sha256 != sha256:
        raise WorkloadError(_HASH_MISMATCH.format(name=name, local=workload.sha256[:12],
                                                  whose=whose, claimed=sha256[:12]))
    return workload


# ---------------------------------------------------------------------------- register

def register_command(
    url: str = typer.Option(..., help="the leaderboard's base URL, e.g. http://host:8000"),
    name: str = typer.Option(..., help="your participant name (unique)"),
) -> None:
    """Register on a leaderboard; the API key is stored in the user config (mode 600)."""
    with LeaderboardClient(url) as client:
        registered = client.register(name)
    path = userconfig.update(url=url.rstrip("/"), name=registered["name"],
                             api_key=registered["api_key"])
    console.print(f"registered [bold]{registered['name']}[/bold] at {url}; "
                  f"API key stored in {path}")


# ---------------------------------------------------------------------------- tournaments

def tournament_body(*, slug: str, title: str, workload: str, objectives: list[str],
                    constraints: list[str], hardware: list[str], division: str,
                    description: str = "", quota_per_day: int = 20, quota_total: int = 200,
                    closes_at: datetime | None = None) -> dict[str, Any]:
    """A TournamentCreate body; the workload's hash and reference come from the local build."""
    import workloads

    chosen = workloads.get(workload)
    body: dict[str, Any] = {
        "slug": slug, "title": title, "description": description, "workload_name": chosen.name,
        "workload_sha256": chosen.sha256, "division": division,
        "hardware_profiles": hardware, "objectives": [{"metric": o} for o in objectives],
        "constraints": constraints, "quota_per_day": quota_per_day,
        "quota_total": quota_total, "reference_quality": chosen.reference_quality,
        "reference_variant": chosen.reference}
    if closes_at is not None:
        body["closes_at"] = closes_at.isoformat()
    return body


@tournament_app.command("create")
def create(
    slug: str = typer.Option(..., help="URL name, e.g. digits-latency"),
    title: str = typer.Option(...),
    workload: str = typer.Option(..., "--workload", "-w", help="built-in workload"),
    objective: list[str] = typer.Option(["latency_p90_ms"], "--objective", "-o"),
    constraint: list[str] = typer.Option([], "--constraint", "-c"),
    hardware: list[str] = typer.Option(["local"], "--hardware"),
    division: str = typer.Option("open", help="open (any variant) or closed (reference)"),
    description: str = typer.Option(""),
    quota_per_day: int = typer.Option(20), quota_total: int = typer.Option(200),
    closes_at: datetime | None = typer.Option(None, help="ISO time; open until then"),
) -> None:
    """Create a tournament (admin token)."""
    if division not in ("open", "closed"):
        raise InputError(f"--division must be open or closed, not {division!r}")
    body = tournament_body(slug=slug, title=title, workload=workload, objectives=objective,
                           constraints=constraint, hardware=hardware, division=division,
                           description=description, quota_per_day=quota_per_day,
                           quota_total=quota_total, closes_at=closes_at)
    with open_client(admin=True) as client:
        created = client.create_tournament(body)
    console.print(f"created tournament [bold]{created['slug']}[/bold]: "
                  f"{client.url}/tournaments/{created['slug']}")


@tournament_app.command("list")
def list_tournaments() -> None:
    """Every tournament on the configured leaderboard."""
    with open_client() as client:
        rows = client.tournaments()
    table = Table(title=f"tournaments at {client.url}")
    for column in ("slug", "title", "workload", "division", "objectives", "open"):
        table.add_column(column)
    for t in rows:
        table.add_row(t["slug"], t["title"], t["workload_name"], t["division"],
                      ", ".join(o["metric"] for o in t["objectives"]),
                      "yes" if t["is_open"] else "no")
    console.print(table)


@tournament_app.command("show")
def show(slug: str = typer.Argument(...)) -> None:
    """One tournament's rules and its leaderboard."""
    with open_client() as client:
        t = get_tournament(client, slug)
        board = client.leaderboard(slug)
    console.print(f"[bold]{t['title']}[/bold] ({t['slug']}) · workload {t['workload_name']} "
                  f"{t['workload_sha256'][:12]}… · {t['division']} division · "
                  f"{'open' if t['is_open'] else 'closed'}")
    console.print(f"objectives: {', '.join(o['metric'] for o in t['objectives'])} · "
                  f"constraints: {', '.join(t['constraints']) or 'none'} · "
                  f"hardware: {', '.join(t['hardware_profiles'])}")
    console.print(leaderboard_table(board))
    console.print(f"website: {client.url}/tournaments/{slug}", soft_wrap=True)


def leaderboard_table(board: dict[str, Any]) -> Table:
    """The ranked rows as a Rich table, objectives first."""
    metrics = [o["metric"] for o in board["objectives"]]
    metrics += [m for m in ("quality_ratio", "cost_per_million_usd") if m not in metrics]
    table = Table(title=f"leaderboard {board['tournament']} (sorted by {board['sort']})")
    for column in ("rank", "participant", "status", "variant", "configuration", *metrics):
        table.add_column(column, justify="right" if column in metrics else "left")
    for row in board["data"]:
        c = row["config"]
        table.add_row(
            str(row["rank"]) if row["rank"] is not None else "—",
            "baseline" if row["is_baseline"] else str(row["participant"]), str(row["status"]),
            row["variant"], f"{c.get('backend')} {c.get('precision')} {c.get('threads')}t "
                            f"b{c.get('batch')} {row['hardware_profile']}",
            *[format_value(row["metrics"].get(m)) for m in metrics])
    return table


# ---------------------------------------------------------------------------- submit

def idempotency_key(slug: str, record: TrialResult) -> str:
    """Same tournament + trial + configuration → same key, so a re-run never duplicates."""
    text = f"podium-submit\n{slug}\n{record.trial_id}\n{record.config_digest}"
    return hashlib.sha256(text.encode()).hexdigest()


def read_results(path: Path, pick: str | None) -> list[TrialResult]:
    """The records to submit from an optimize JSON (default: its Pareto front) or a
    ``trial run`` JSON (its single record)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(_BAD_RESULT.format(path=path, reason=exc)) from None
    try:
        if isinstance(data, dict) and "trials" in data and "pareto" in data:
            return _pick(data, pick or "pareto", path)
        record = TrialResult.model_validate(data)
    except (ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(_BAD_RESULT.format(path=path, reason=reason)) from None
    if pick not in (None, "best", "pareto") and not record.trial_id.startswith(pick):
        raise InputError(_NO_TRIAL.format(pick=pick, path=path))
    return [record]


def _pick(data: dict[str, Any], pick: str, path: Path) -> list[TrialResult]:
    if pick == "best":
        return [TrialResult.model_validate(data["best"])] if data.get("best") else []
    if pick == "pareto":
        return [TrialResult.model_validate(r) for r in data["pareto"]]
    pool = [r for r in [data.get("baseline"), *data["trials"]] if r]
    found = {r["trial_id"]: r for r in pool if str(r.get("trial_id", "")).startswith(pick)}
    if not found:
        raise InputError(_NO_TRIAL.format(pick=pick, path=path))
    if len(found) > 1:
        raise InputError(_AMBIGUOUS.format(pick=pick, n=len(found), path=path))
    return [TrialResult.model_validate(next(iter(found.values())))]


def submit_records(client: LeaderboardClient, slug: str, records: list[TrialResult], *,
                   method: str | None = None, code_url: str | None = None) -> list[dict]:
    """Submit each record, print its URL and rank; raise every rejection's reasons at once.

    Raises:
        SubmissionRejected: one or more records were refused (the others are submitted).
    """
    accepted, rejected = [], []
    for record in records:
        try:
            accepted.append(client.submit(slug, record.model_dump(mode="json"),
                                          idempotency_key=idempotency_key(slug, record),
                                          method=method, code_url=code_url))
        except SubmissionRejected as exc:
            rejected.append((record, exc))
    ranks = {r["submission_id"]: r for r in client.leaderboard(slug)["data"]} if accepted else {}
    for submission in accepted:
        row = ranks.get(submission["id"])
        where = (f"rank {row['rank']}" if row and row["rank"] is not None
                 else f"not ranked (constraints unmet: {'; '.join(submission['unmet'])})")
        console.print(f"submitted {submission['record']['trial_id'][:8]} "
                      f"{submission['variant']} → {submission['url']}  {where}", soft_wrap=True)
    if rejected:
        reasons = [f"{r.trial_id[:8]}: {'; '.join(e.reasons) or e}" for r, e in rejected]
        raise SubmissionRejected(_SUBMISSIONS_REJECTED.format(
            n=len(rejected), total=len(records), reasons=" | ".join(reasons)),
            reasons=[reason for _, e in rejected for reason in e.reasons])
    return accepted


def open_submission(slug: str, workload: Any) -> LeaderboardClient:
    """A keyed client for ``slug``, checked before a search so that a wrong tournament,
    key or workload fails at once rather than after the budget is spent."""
    client = open_client(key=True)
    try:
        tournament = get_tournament(client, slug)
        client.me()
        if tournament["workload_sha256"] != workload.sha256:
            raise WorkloadError(_HASH_MISMATCH.format(
                name=workload.name, local=workload.sha256[:12], whose=f"tournament {slug!r}",
                claimed=tournament["workload_sha256"][:12]))
    except BaseException:
        client.close()
        raise
    return client


def submit_command(
    result: Path = typer.Argument(..., help="an optimize JSON or a `trial run` JSON"),
    tournament: str = typer.Option(..., "--tournament", "-t", help="tournament slug"),
    pick: str | None = typer.Option(None, help="best, pareto (default) or a trial id"),
    method: str | None = typer.Option(None, help="how the result was obtained"),
    code_url: str | None = typer.Option(None, help="where the code lives (http[s] URL)"),
) -> None:
    """Submit results to a tournament; re-running it never submits twice."""
    records = read_results(result, pick)
    if not records:
        raise InputError(f"{result} holds nothing to submit for --pick {pick or 'pareto'}")
    with open_client(key=True) as client:
        get_tournament(client, tournament)
        submit_records(client, tournament, records, method=method, code_url=code_url)


# ---------------------------------------------------------------------------- reproduce

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
        TrialFailed: the re-run failed to build or measure.
    """
    from tuner.config import Configuration
    from tuner.measure import Protocol
    from tuner.trial import run_trial
    from tuner.versions import package_versions

    workload = local_workload(record.workload.name, record.workload.sha256,
                              whose="the submitted record")
    here = package_versions()
    drift = [f"{name} {version} → {here.get(name, 'missing')}"
             for name, version in sorted(record.packages.items())
             if name != "podium" and here.get(name) != version]
    if drift:
        errors.print(f"warning: package versions differ from the record: {', '.join(drift)}")
    try:
        protocol = Protocol(**record.measurement.get("protocol", {}))
    except TypeError:
        protocol = Protocol()
    config = Configuration.model_validate(record.config)
    with console.status(f"re-measuring {record.trial_id[:8]} on {config.hardware} …"):
        result = run_trial(workload, config, protocol=protocol, timeout_s=timeout_s,
                           seed=record.seed)
    if not result.ok:
        raise TrialFailed(f"the re-run failed ({result.failed_stage}): {result.error}",
                          stage=result.failed_stage or "trial")
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
    from tuner.trial import node_profiles

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
            result = remeasure(record, timeout_s=timeout_s)
        except (InputError, TrialFailed) as exc:
            console.print(f"skipped {label}: {exc}")
            continue
        rows = compare(record, result, latency_tolerance=latency_tolerance,
                       quality_tolerance=quality_tolerance, one_sided=True)
        verdict = "disputed" if any(r.ok is False for r in rows) else "verified"
        ratios = ", ".join(f"{r.metric} ×{r.ratio:.2f}" for r in rows
                           if r.ok is not None and r.ratio is not None)
        metrics = {r.metric: r.measured for r in rows
                   if r.measured is not None and math.isfinite(r.measured)}
        checks.append(client.referee(row["submission_id"], metrics=metrics, verdict=verdict,
                                     note=f"re-measured on {result.hardware.node}: {ratios}"))
        colour = "green" if verdict == "verified" else "red"
        console.print(f"[{colour}]{verdict}[/{colour}] {label}: {ratios}")
    return checks


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

"""Tournament commands: ``register``, ``tournament create|list|show`` and ``submit`` —
the CLI side of the leaderboard API (re-measuring lives in :mod:`tuner.cli.verify`).

Exit codes: 0 done, 2 bad input (unknown tournament, wrong workload, missing key, server
down, a rejected submission — with every checker reason).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.table import Table

from tuner.cli import userconfig
from tuner.cli.output import (
    config_cell,
    console,
    format_value,
    is_wide,
    print_table,
    short_metric,
    wide_option,
)
from tuner.client import LeaderboardClient, LeaderboardRefused
from tuner.errors import InputError, SubmissionRejected, WorkloadError
from tuner.search.report import varying
from tuner.search.result import CONFIRMATION_KEY
from tuner.trial.results import Stability, TrialResult

_NO_TOURNAMENT = "no tournament {slug!r} at {url} (list them with `podium tournament list`)"
_BAD_RESULT = "{path} is not an optimize or `trial run` JSON: {reason}"
_NO_TRIAL = "no trial {pick!r} in {path} (choose best, pareto or a trial id)"
_AMBIGUOUS = "trial id {pick!r} matches {n} trials in {path}; give more characters"
_HASH_MISMATCH = ("workload {name!r} here has sha256 {local}…, {whose} has {claimed}…: "
                  "not the same workload, so numbers measured here cannot be compared")
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
    token: str | None = typer.Option(
        None, envvar="PODIUM_REGISTRATION_TOKEN",
        help="the registration token from the host, where its server asks for one"),
) -> None:
    """Register on a leaderboard; the API key is stored in the user config (mode 600)."""
    with LeaderboardClient(url) as client:
        registered = client.register(name, token=token)
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
def list_tournaments(wide: bool = wide_option()) -> None:
    """Every tournament on the configured leaderboard."""
    with open_client() as client:
        rows = client.tournaments()
    table = Table(title=f"tournaments at {client.url}")
    for column in ("slug", "title", "workload", "division", "objectives", "open"):
        table.add_column(column, overflow="fold")
    for t in rows:
        table.add_row(t["slug"], t["title"], t["workload_name"], t["division"],
                      ", ".join(o["metric"] for o in t["objectives"]),
                      "yes" if t["is_open"] else "no")
    print_table(table)


@tournament_app.command("show")
def show(slug: str = typer.Argument(...), wide: bool = wide_option()) -> None:
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
    print_table(leaderboard_table(board))
    console.print(f"website: {client.url}/tournaments/{slug}", soft_wrap=True)


def leaderboard_table(board: dict[str, Any]) -> Table:
    """The ranked rows as a Rich table, objectives first."""
    metrics = [o["metric"] for o in board["objectives"]]
    metrics += [m for m in ("quality_ratio", "cost_per_million_usd") if m not in metrics]
    # Fits 80 columns without cutting a cell: short metric headers, text that wraps (a long
    # name folds onto a second line) and the configuration under its variant.
    table = Table(title=f"leaderboard {board['tournament']} (sorted by {board['sort']})",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    wide = is_wide()  # natural widths: no flexible columns
    table.add_column("participant", overflow="fold", min_width=8, ratio=None if wide else 2)
    table.add_column("status", no_wrap=True)
    table.add_column("configuration", overflow="fold", min_width=12, ratio=None if wide else 3)
    for metric in metrics:
        table.add_column(short_metric(metric), justify="right", no_wrap=True)
    configs = [{**row["config"], "variant": row["variant"],
                "hardware": row["hardware_profile"]} for row in board["data"]]
    options = varying(configs)
    for row, config in zip(board["data"], configs, strict=True):
        table.add_row(
            str(row["rank"]) if row["rank"] is not None else "—",
            "baseline" if row["is_baseline"] else str(row["participant"]), str(row["status"]),
            config_cell(config, options),
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
        best = {k: v for k, v in (data.get("best") or {}).items() if k != CONFIRMATION_KEY}
        return [TrialResult.model_validate(best)] if best else []
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


def submit_baseline(client: LeaderboardClient, slug: str,
                    baseline: TrialResult | None) -> dict[str, Any] | None:
    """Post the search's fp32 reference as the tournament's baseline row (admin token).

    A failed or unstable baseline is not posted (the checker would refuse an unstable one,
    MEASUREMENT.md rule 4): a line says why and the caller goes on without a baseline row.
    """
    if baseline is None or not baseline.ok:
        reason = baseline.error if baseline is not None else "none was measured"
        console.print(f"baseline not submitted: {reason}", soft_wrap=True)
        return None
    if baseline.metrics.stability is Stability.UNSTABLE:
        console.print(f"baseline not submitted: its measurement is unstable "
                      f"({baseline.instability()}); re-measure on a quiet machine",
                      soft_wrap=True)
        return None
    return client.submit(slug, baseline.model_dump(mode="json"), baseline=True,
                         idempotency_key=idempotency_key(slug, baseline))


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

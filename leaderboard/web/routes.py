"""Server-rendered pages: tournament list, tournament leaderboard + Pareto chart, submission.

plotly.js is served from the plotly Python package itself (no CDN: there is no internet);
the pages run under a nonce-based CSP (:mod:`leaderboard.core.headers`).
"""

from __future__ import annotations

import functools
import importlib.util
import re
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from leaderboard import board, crud
from leaderboard.api.deps import SessionDep
from leaderboard.core.db import utcnow
from leaderboard.core.errors import ApiError
from leaderboard.models import SubmissionStatus
from leaderboard.present import submission_public, tournament_public
from leaderboard.templating import TEMPLATES
from tuner.trial.results import METRICS

PAGE_ROWS = 100
CHART_POINTS = 2000
CHART_X, CHART_Y = "latency_p90_ms", "quality_ratio"
_MEASURED = {"latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_mean_ms",
             "throughput_per_s", "quality", "model_size_bytes", "peak_rss_bytes", "build_s"}

router = APIRouter(include_in_schema=False)


def plotly_js_path() -> Path:
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise ApiError(404, "plotly is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


# plotly.js 6 adds maplibre's CSS at load in a <style> it creates unless one with this id
# exists; such an element would be an inline style without the CSP nonce.
_STYLE_AT_LOAD = re.compile(
    rb'getElementById\("([0-9a-f]{16,64})"\)\)\{var \w+=document\.createElement\("style"\)')


@functools.cache
def plotly_style_ids() -> tuple[str, ...]:
    """Ids of the styles plotly.js would inject at load: the page creates them first, empty
    and with the nonce (no map trace is drawn here, so their rules are not missed)."""
    try:
        bundle = plotly_js_path().read_bytes()
    except (ApiError, OSError):
        return ()
    return tuple(dict.fromkeys(m.decode() for m in _STYLE_AT_LOAD.findall(bundle)))


@router.get("/static/plotly.min.js")
def plotly_js() -> FileResponse:
    return FileResponse(plotly_js_path(), media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})


# Swagger UI comes from its CDN (FastAPI's default page); its one inline script gets the nonce.
DOCS_CSP = ("default-src 'none'; script-src 'nonce-{nonce}' https://cdn.jsdelivr.net; "
            "style-src 'self' https://cdn.jsdelivr.net; "
            "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


@router.get("/docs", response_class=HTMLResponse)
def api_docs(request: Request) -> HTMLResponse:
    """The interactive API documentation, under a CSP of its own."""
    nonce = request.state.csp_nonce
    page = get_swagger_ui_html(openapi_url=request.app.openapi_url,
                               title=f"{request.app.title} API")
    body = bytes(page.body).replace(b"<script", f'<script nonce="{nonce}"'.encode())
    return HTMLResponse(body, headers={"Content-Security-Policy": DOCS_CSP.format(nonce=nonce)})


@router.get("/", response_class=HTMLResponse)
def index(request: Request, session: SessionDep) -> HTMLResponse:
    rows, count = crud.list_tournaments(session=session, limit=500, offset=0)
    now = utcnow()
    tournaments = [tournament_public(t, is_open=crud.is_open(t, now)) for t in rows]
    return TEMPLATES.TemplateResponse(request, "index.html",
                                      {"tournaments": tournaments, "count": count})


def source_of(metric: str, metrics: dict[str, Any]) -> str:
    if metric in _MEASURED:
        return "measured"
    if metric in ("power_w", "energy_mj_per_inference"):
        return metrics.get("power_source") or "unavailable"
    if metric == "cost_per_million_usd":
        return f"derived ({metrics.get('price_source') or 'unavailable'})"
    return "derived"


def _hover(row: dict[str, Any]) -> str:
    who = "baseline (host)" if row["is_baseline"] else (row["participant"] or "?")
    config = "<br>".join(f"{k} = {v}" for k, v in sorted(row["config"].items()))
    return f"<b>{who}</b> · {row['variant']} · {row['hardware_profile']}<br>{config}"


def pareto_figure(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A plotly figure: one trace per hardware profile, the baseline as a star."""
    traces: dict[str, dict[str, Any]] = {}
    for row in rows[:CHART_POINTS]:
        x, y = row["metrics"].get(CHART_X), row["metrics"].get(CHART_Y)
        if x is None or y is None:
            continue
        name = "baseline" if row["is_baseline"] else row["hardware_profile"]
        trace = traces.setdefault(name, {
            "type": "scatter", "mode": "markers", "name": name, "x": [], "y": [], "text": [],
            "hovertemplate": "%{text}<br>p90 %{x:.3f} ms · quality %{y:.4f}<extra></extra>",
            "marker": {"size": 14, "symbol": "star"} if row["is_baseline"] else {"size": 9}})
        trace["x"].append(x)
        trace["y"].append(y)
        trace["text"].append(_hover(row))
    layout = {"xaxis": {"title": {"text": f"{CHART_X} ({METRICS[CHART_X][0]}, lower is better)"}},
              "yaxis": {"title": {"text": f"{CHART_Y} ({METRICS[CHART_Y][0]}, higher is better)"}},
              "legend": {"title": {"text": "hardware"}}, "height": 420,
              "margin": {"l": 70, "r": 20, "t": 20, "b": 60}}
    return {"data": list(traces.values()), "layout": layout}


@router.get("/tournaments/{slug}", response_class=HTMLResponse)
def tournament_page(request: Request, session: SessionDep, slug: str,
                    sort: str | None = None, order: str | None = None,
                    hardware: str | None = Query(None, max_length=200),
                    verified_only: bool = False, offset: int = Query(0, ge=0)) -> HTMLResponse:
    state = request.app.state
    tournament, sort, order, rows = board.ranked(
        engine=state.engine, cache=state.cache, slug=slug, sort=sort, order=order,
        hardware=hardware or None, verified_only=verified_only)
    present = {name for row in rows for name, value in row["metrics"].items()
               if value is not None and name in METRICS}
    present |= {o["metric"] for o in tournament.objectives}
    columns = [(name, unit, direction) for name, (unit, direction) in METRICS.items()
               if name in present]
    return TEMPLATES.TemplateResponse(request, "tournament.html", {
        "t": tournament_public(tournament, is_open=crud.is_open(tournament, utcnow())),
        "rows": rows[offset:offset + PAGE_ROWS], "count": len(rows), "offset": offset,
        "page_rows": PAGE_ROWS, "columns": columns, "sort": sort, "order": order,
        "hardware": hardware or "", "verified_only": verified_only,
        "figure": pareto_figure(rows), "plotly_style_ids": plotly_style_ids()})


@router.get("/submissions/{submission_id}", response_class=HTMLResponse)
def submission_page(request: Request, session: SessionDep,
                    submission_id: uuid.UUID) -> HTMLResponse:
    submission = crud.get_submission(session=session, submission_id=submission_id)
    if submission.status == SubmissionStatus.REJECTED:
        raise ApiError(404, f"no submission {submission_id}")
    public = submission_public(session=session, submission=submission,
                               base_url=str(request.base_url))
    metrics = submission.metrics
    rows = [(name, metrics.get(name), unit, direction, source_of(name, metrics))
            for name, (unit, direction) in METRICS.items() if metrics.get(name) is not None]
    return TEMPLATES.TemplateResponse(request, "submission.html", {
        "s": public, "record": submission.record, "metric_rows": rows})

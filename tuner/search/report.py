"""``podium report``: one self-contained HTML file of a search, to look at rather than read.

The file embeds plotly.js (it opens offline, from disk, with no server) and holds:

* the headline: the ORT default vs the best — confirmed speed-up where the search confirmed
  it, quality vs fp32, cost and energy with their source labels (estimates say so);
* the Pareto view: every measured trial on the objective axes (or the objective against
  quality), feasible / infeasible / unstable / pruned marked apart, the front joined, the
  baseline drawn; hovering a point shows its configuration;
* the optimization history: best-so-far by trial and by wall-clock time, warm-started
  trials marked;
* parameter importances (``optuna.importance``, when the study can be opened and has enough
  trials) and the latency of each backend / precision (box plots) with its quality;
* the trials table (click a header to sort) and where the time went (failure, prune and
  infeasible reasons grouped with counts and seconds);
* the hardware fingerprint, the package versions and the commands that reproduce and export
  the best.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from tuner.backends.options import CORE_KEYS
from tuner.search.result import OptimizationResult
from tuner.trial.constraints import feasible, parse_constraints
from tuner.trial.results import METRIC_DIRECTIONS, METRIC_UNITS, TrialResult, TrialState

# How each kind of trial is drawn in the Pareto view.
MARKERS = {"feasible": ("#1f77b4", "circle"), "infeasible": ("#d62728", "x"),
           "unstable": ("#ff7f0e", "diamond-open"), "pruned": ("#7f7f7f", "triangle-down-open")}
SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach((th, index) => {
  th.addEventListener("click", () => {
    const body = th.closest("table").tBodies[0];
    const rows = Array.from(body.rows);
    const up = th.dataset.order !== "asc";
    th.dataset.order = up ? "asc" : "desc";
    const key = r => { const t = r.cells[index].dataset.v ?? r.cells[index].textContent;
                       const n = parseFloat(t); return isNaN(n) ? t : n; };
    rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (up ? 1 : -1));
    rows.forEach(r => body.appendChild(r));
  });
});
"""
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; max-width: 1200px; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: left; }
table.sortable th { cursor: pointer; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.headline { font-size: 1.3rem; }
.note { color: #666; font-size: 0.85rem; }
code, pre { background: #f4f4f4; padding: 0.1rem 0.3rem; }
"""


def describe(config: dict[str, Any], options: set[str] | None = None) -> str:
    """A configuration in one line: the core keys, then its other options (only those in
    ``options`` when given: the ones that vary across a search)."""
    head = " ".join(str(config[k]) + ("t" if k == "threads" else "")
                    if k != "batch" else f"b{config[k]}"
                    for k in CORE_KEYS if config.get(k) is not None)
    rest = ", ".join(f"{k}={v}" for k, v in sorted(config.items())
                     if k not in CORE_KEYS and (options is None or k in options))
    return f"{head} ({rest})" if rest else head


def varying(configs: Iterable[dict[str, Any]]) -> set[str]:
    """The options whose value is not the same in every configuration that has them."""
    seen: dict[str, set[str]] = {}
    for config in configs:
        for key, value in config.items():
            seen.setdefault(key, set()).add(json.dumps(value, default=str))
    return {key for key, values in seen.items() if len(values) > 1}


def outcome(result: TrialResult, constraints: list[Any]) -> str:
    """feasible / infeasible / unstable / pruned / failed, as the report marks a trial."""
    if result.state is TrialState.PRUNED:
        return "pruned"
    if result.state is TrialState.INFEASIBLE:
        return "infeasible"
    if not result.ok:
        return "failed"
    if result.instability() is not None:
        return "unstable"
    return "feasible" if feasible([result], constraints) else "infeasible"


def write_report(result: OptimizationResult, path: Path, *, study: Any = None) -> Path:
    """Write the report of ``result`` to ``path`` (``study``: the Optuna study, for the
    importances; opened from the result's storage when None and reachable)."""
    import plotly.offline

    if study is None:
        study = _open_study(result)
    constraints = parse_constraints(result.constraints)
    sections = [
        ("Headline", _headline(result)),
        ("Pareto front", _figure(pareto_figure(result, constraints), "pareto")),
        ("Optimization history", _figure(history_figure(result), "history")),
        ("Parameter importances", _importances(study, result)),
        ("Latency by backend and precision", _figure(breakdown_figure(result, constraints),
                                                     "breakdown")),
        ("Where the time went", _time_table(result)),
        ("Trials", _trials_table(result, constraints)),
        ("Hardware and software", _provenance(result)),
    ]
    body = "\n".join(f'<section id="{title.lower().replace(" ", "-")}"><h2>{title}</h2>\n'
                     f"{content}\n</section>" for title, content in sections)
    title = f"Podium report · {html.escape(result.study)}"
    page = (f"<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{title}</title>\n<style>{STYLE}</style>\n"
            f"<script>{plotly.offline.get_plotlyjs()}</script>\n</head>\n<body>\n"
            f"<h1>{title}</h1>\n<p class=\"note\">objectives "
            f"{html.escape(', '.join(result.objectives))}"
            f"; constraints {html.escape(', '.join(result.constraints) or 'none')}; "
            f"{result.n_trials} trials; sampler {html.escape(result.sampler or '?')}</p>\n"
            f"{body}\n<script>{SORT_SCRIPT}</script>\n</body>\n</html>\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page)
    tmp.replace(path)
    return path


def _open_study(result: OptimizationResult) -> Any:
    if not result.storage or result.storage.startswith(":memory:"):
        return None
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return optuna.load_study(study_name=result.study, storage=result.storage)
    except Exception:  # a moved or remote storage: the report goes without importances
        return None


def _figure(figure: Any, name: str) -> str:
    if figure is None:
        return '<p class="note">nothing measured to draw</p>'
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{name}",
                          config={"displaylogo": False})


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return f"{text} {unit}".strip()


def _headline(result: OptimizationResult) -> str:
    base, best = result.baseline, result.best
    if best is None:
        return '<p class="headline">No feasible configuration was found.</p>'
    objective = result.objectives[0]
    confirmation = result.confirmation or {}
    speedup = confirmation.get("speedup_p90")
    if isinstance(speedup, int | float):
        claim = (f"<b>{speedup:.2f}×</b> faster (p90) than the ONNX Runtime default, confirmed "
                 f"side by side over {confirmation.get('rounds')} interleaved rounds")
    elif base is not None and base.metric("latency_p90_ms") and best.metric("latency_p90_ms"):
        ratio = base.metric("latency_p90_ms") / best.metric("latency_p90_ms")
        claim = (f"{ratio:.2f}× the ONNX Runtime default's p90 in the search "
                 "(<i>not confirmed side by side</i>)")
    else:
        claim = "no ratio to the ONNX Runtime default (its measurement did not hold up)"
    m = best.metrics
    rows = [("best", describe(best.config)),
            (objective, _fmt(best.metric(objective), METRIC_UNITS[objective])),
            ("quality vs fp32", _fmt(m.quality_ratio)),
            ("cost", f"{_fmt(m.cost_per_million_usd, 'USD per 1M')} ({m.price_source})"),
            ("energy", f"{_fmt(m.energy_mj_per_inference, 'mJ per sample')} "
                       f"({m.power_source})"),
            ("baseline", describe(base.config) + f": {_fmt(base.metric(objective))}"
             if base is not None else "—")]
    table = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f'<p class="headline" id="headline">{claim}.</p>\n<table>{table}</table>'


def _axes(result: OptimizationResult) -> tuple[str, str]:
    objectives = result.objectives
    if len(objectives) >= 2:
        return objectives[0], objectives[1]
    return objectives[0], "quality_ratio"


def pareto_figure(result: OptimizationResult, constraints: list[Any]) -> Any:
    """Every trial with both axes measured, by outcome; the front joined; the baseline."""
    import plotly.graph_objects as go

    x, y = _axes(result)
    figure = go.Figure()
    groups: dict[str, list[TrialResult]] = {}
    for r in result.results:
        kind = outcome(r, constraints)
        if kind != "failed":
            groups.setdefault(kind, []).append(r)
    drawn = False
    for kind, members in groups.items():
        points = [(r, _value(r, x), _value(r, y)) for r in members]
        points = [p for p in points if p[1] is not None and p[2] is not None]
        if not points:
            continue
        color, symbol = MARKERS[kind]
        figure.add_trace(go.Scatter(
            x=[p[1] for p in points], y=[p[2] for p in points], mode="markers", name=kind,
            marker={"color": color, "symbol": symbol, "size": 9},
            text=[html.escape(describe(p[0].config)) for p in points],
            hovertemplate="%{text}<br>" + f"{x}=%{{x}}<br>{y}=%{{y}}<extra>{kind}</extra>"))
        drawn = True
    front = [(_value(r, x), _value(r, y)) for r in result.front]
    front = sorted(p for p in front if None not in p)
    if front:
        figure.add_trace(go.Scatter(x=[p[0] for p in front], y=[p[1] for p in front],
                                    mode="lines+markers", name="Pareto front",
                                    line={"color": "#2ca02c"}, marker={"size": 12,
                                                                       "symbol": "circle-open"}))
    base = result.baseline
    if base is not None and _value(base, x) is not None and _value(base, y) is not None:
        figure.add_trace(go.Scatter(x=[_value(base, x)], y=[_value(base, y)], mode="markers",
                                    name="baseline (ORT default)",
                                    marker={"color": "black", "symbol": "star", "size": 14},
                                    text=[describe(base.config)],
                                    hovertemplate="%{text}<extra>baseline</extra>"))
        drawn = True
    if not drawn:
        return None
    figure.update_layout(xaxis_title=f"{x} ({METRIC_UNITS[x]}, {_better(x)})",
                         yaxis_title=f"{y} ({METRIC_UNITS[y]}, {_better(y)})", height=480,
                         margin={"t": 20})
    return figure


def _value(result: TrialResult, metric: str) -> float | None:
    """The figure a point is drawn at; a pruned trial at its probe p50 (a lower bound)."""
    value = result.metric(metric)
    if value is None and result.state is TrialState.PRUNED and metric.startswith("latency_"):
        return (result.measurement.get("pruned") or {}).get("probe_p50_ms")
    return value


def _better(metric: str) -> str:
    return "lower is better" if METRIC_DIRECTIONS[metric] == "minimize" else "higher is better"


def history_figure(result: OptimizationResult) -> Any:
    """Best-so-far of the first objective by trial and by minutes since the search began."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    objective = result.objectives[0]
    ordered = sorted(result.results, key=lambda r: r.started_at)
    if not ordered:
        return None
    start = min(r.started_at for r in ordered)
    sign = 1 if METRIC_DIRECTIONS[objective] == "minimize" else -1
    good = {r.trial_id for r in result.feasible}
    best, xs, minutes, values, warm = None, [], [], [], []
    for number, r in enumerate(ordered, start=1):
        value = r.metric(objective) if r.trial_id in good else None
        if value is not None and (best is None or sign * value < sign * best):
            best = value
        xs.append(number)
        minutes.append(((r.finished_at or r.started_at) - start).total_seconds() / 60)
        values.append(best)
        warm.append(r.trial_id in result.knowledge)
    figure = make_subplots(rows=1, cols=2, subplot_titles=("by trial", "by wall-clock"))
    figure.add_trace(go.Scatter(x=xs, y=values, mode="lines+markers", name="best so far",
                                line={"shape": "hv"}), row=1, col=1)
    figure.add_trace(go.Scatter(x=minutes, y=values, mode="lines+markers",
                                name="best so far (time)", line={"shape": "hv"},
                                showlegend=False), row=1, col=2)
    if any(warm):
        figure.add_trace(go.Scatter(x=[x for x, w in zip(xs, warm, strict=True) if w],
                                    y=[v for v, w in zip(values, warm, strict=True) if w],
                                    mode="markers", name="warm-started from knowledge",
                                    marker={"symbol": "star", "size": 11, "color": "#9467bd"}),
                         row=1, col=1)
    figure.update_xaxes(title_text="trial", row=1, col=1)
    figure.update_xaxes(title_text="minutes since the search began", row=1, col=2)
    figure.update_yaxes(title_text=f"{objective} ({METRIC_UNITS[objective]})", row=1, col=1)
    figure.update_layout(height=380, margin={"t": 40})
    return figure


def _importances(study: Any, result: OptimizationResult) -> str:
    if study is None:
        return '<p class="note">the study is not reachable from this machine: no importances</p>'
    objective = result.objectives[0]
    # Optuna's evaluator ranks parameters by how they reach *low* targets.
    sign = 1.0 if METRIC_DIRECTIONS[objective] == "minimize" else -1.0
    try:
        import warnings

        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            figure = optuna.visualization.plot_param_importances(
                study, target=lambda t: sign * t.values[0] if t.values else float("nan"),
                target_name=objective)
    except Exception as exc:  # too few trials, a single grid parameter, …
        return f'<p class="note">no importances: {html.escape(str(exc)[:200])}</p>'
    figure.update_layout(height=360, margin={"t": 40})
    return _figure(figure, "importances")


def breakdown_figure(result: OptimizationResult, constraints: list[Any]) -> Any:
    """Latency of each backend / precision (box plots) and its quality (scatter)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    groups: dict[str, list[TrialResult]] = {}
    for r in result.results:
        if r.ok and r.metric("latency_p90_ms") is not None:
            groups.setdefault(f"{r.config.get('backend')} {r.config.get('precision')}",
                              []).append(r)
    if not groups:
        return None
    figure = make_subplots(rows=1, cols=2, subplot_titles=("latency_p90_ms",
                                                           "quality_ratio"))
    for name, members in sorted(groups.items()):
        figure.add_trace(go.Box(y=[r.metric("latency_p90_ms") for r in members], name=name,
                                boxpoints="all", showlegend=False), row=1, col=1)
        figure.add_trace(go.Scatter(x=[name] * len(members),
                                    y=[r.metric("quality_ratio") for r in members],
                                    mode="markers", showlegend=False, name=name), row=1, col=2)
    figure.update_yaxes(title_text="ms per call", row=1, col=1)
    figure.update_yaxes(title_text="fraction of fp32", row=1, col=2)
    figure.update_layout(height=380, margin={"t": 40})
    return figure


def _time_table(result: OptimizationResult) -> str:
    rows = "".join(f"<tr><td>{html.escape(g['outcome'])}</td><td>{html.escape(g['reason'])}</td>"
                   f"<td class=\"num\">{g['trials']}</td>"
                   f"<td class=\"num\">{g['seconds']:.0f}</td></tr>"
                   for g in result.time_by_outcome)
    return ('<table id="time-by-outcome"><thead><tr><th>outcome</th><th>reason</th>'
            f"<th>trials</th><th>seconds</th></tr></thead><tbody>{rows}</tbody></table>")


def _trials_table(result: OptimizationResult, constraints: list[Any]) -> str:
    metrics = list(dict.fromkeys([*result.objectives, "latency_p90_ms", "quality_ratio"]))
    head = "".join(f"<th>{h}</th>" for h in ["trial", "outcome", "configuration", *metrics,
                                              "stability", "seconds", "reason"])
    rows = []
    options = varying(r.config for r in result.results)
    for r in sorted(result.results, key=lambda r: r.started_at):
        seconds = sum(v for k, v in r.timings.items() if k.endswith("_s"))
        cells = [f"<td><code>{r.trial_id[:8]}</code></td>",
                 f"<td>{outcome(r, constraints)}</td>",
                 f"<td>{html.escape(describe(r.config, options))}</td>",
                 *(f'<td class="num" data-v="{r.metric(m) if r.metric(m) is not None else ""}">'
                   f"{_fmt(r.metric(m))}</td>" for m in metrics),
                 f"<td>{r.metrics.stability or '—'}</td>",
                 f'<td class="num">{seconds:.1f}</td>',
                 f"<td>{html.escape((r.error or '')[:160])}</td>"]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<table class="sortable" id="trials"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
            '<p class="note">click a column header to sort</p>')


def _provenance(result: OptimizationResult) -> str:
    best = result.best or result.baseline
    if best is None:
        return '<p class="note">no trial to describe</p>'
    fingerprint = json.dumps(best.hardware.fingerprint, indent=1, default=str)
    packages = ", ".join(f"{k} {v}" for k, v in sorted(best.packages.items()))
    commands = (f"podium export --study {result.study} --storage {result.storage} ./winner\n"
                f"podium export --verify ./winner\n"
                f"podium trial run --workload {best.workload.name} "
                + " ".join(f"--set {k}={v}" for k, v in sorted(best.config.items())))
    when = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (f"<p>Measured on <b>{html.escape(best.hardware.profile)}</b> "
            f"(node {html.escape(str(best.hardware.node))}); report written {when}.</p>"
            f"<pre id=\"fingerprint\">{html.escape(fingerprint)}</pre>"
            f"<p>Packages: {html.escape(packages)}</p>"
            f"<p>Export and re-check the best, or re-run it:</p>"
            f"<pre id=\"commands\">{html.escape(commands)}</pre>")

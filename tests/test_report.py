"""``podium report``: one self-contained HTML file from a real (small) search, opened in a
headless Chromium from disk (no server), its plots rendered and its console clean."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import FAST_PROTOCOL
from tuner.cli import main
from tuner.search.report import outcome, pareto_figure
from tuner.search.result import OptimizationResult
from tuner.trial.constraints import parse_constraints

CHROMIUM = Path("/usr/bin/chromium")
SPACE = {"backend": "ort", "batch": 1, "threads": 1, "variant": ["linear", "mlp-64"],
         "precision": ["fp32", "int8-dynamic"], "per_channel": False,
         "ort_graph_optimization": "all"}
OBJECTIVES = ["latency_p90_ms", "quality_ratio"]
CONSTRAINTS = ["quality_ratio >= 0.9"]


@pytest.fixture(scope="module")
def searched(digits, tmp_path_factory):
    from tuner.search.optimize import optimize

    folder = tmp_path_factory.mktemp("report")
    study, storage = f"report-{uuid.uuid4().hex[:8]}", f"sqlite:///{folder / 'studies.db'}"
    result = optimize(digits, OBJECTIVES, CONSTRAINTS, trials=4, space=SPACE, sampler="grid",
                      study=study, storage=storage, protocol=FAST_PROTOCOL, warm_start=False)
    path = folder / "result.json"
    result.to_json(path)
    return result, path, study, storage


def _render(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM after the scripts ran, and every console line the page printed."""
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--enable-logging=stderr",
               "--v=0", "--virtual-time-budget=8000", "--dump-dom", page.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def test_report_from_json_and_from_the_study(searched, tmp_path, capsys):
    result, path, study, storage = searched
    from_json = tmp_path / "json.html"
    assert main(["report", str(path), "-o", str(from_json)]) == 0
    assert main(["report", "--study", study, "--storage", storage, "-o",
                 str(tmp_path / "study.html")]) == 0
    page = from_json.read_text()
    for section in ("headline", "pareto-front", "optimization-history",
                    "parameter-importances", "latency-by-backend-and-precision",
                    "where-the-time-went", "trials", "hardware-and-software"):
        assert f'<section id="{section}">' in page, section
    assert "<script src=" not in page  # plotly.js inline: it opens offline
    assert "podium export --study" in page and result.best.trial_id[:8] in page
    assert "estimated_tdp" in page  # energy says it is an estimate
    # Read back, the JSON is the same search.
    again = OptimizationResult.from_dict(json.loads(path.read_text()))
    assert [r.trial_id for r in again.results] == [r.trial_id for r in result.results]
    assert again.best.trial_id == result.best.trial_id


def test_bad_report_input_is_one_line(tmp_path, capsys):
    (tmp_path / "junk.json").write_text('{"objectives": 3}')
    assert main(["report", str(tmp_path / "junk.json"), "-o", str(tmp_path / "r.html")]) == 2
    assert main(["report", "-o", str(tmp_path / "r.html")]) == 2
    assert main(["report", "--study", "nope", "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("podium: error:") == 3 and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent: "
                                                  "apt-get install -y chromium")
def test_report_renders_in_a_browser_offline(searched, tmp_path):
    result, path, _, _ = searched
    report = tmp_path / "report.html"
    assert main(["report", str(path), "-o", str(report)]) == 0
    dom, console = _render(report, tmp_path / "profile")
    assert console == []  # no errors, no warnings
    pareto = dom[dom.index('id="fig-pareto"'):dom.index('id="fig-history"')]
    expected = pareto_figure(result, parse_constraints(result.constraints))
    assert len(re.findall(r'class="point"', pareto)) == sum(len(t.x) for t in expected.data)
    kinds = {outcome(r, parse_constraints(result.constraints)) for r in result.results}
    assert "feasible" in kinds
    assert 'class="main-svg"' in dom[dom.index('id="fig-history"'):]  # drawn, not empty


def test_the_search_tables_fit_80_columns(searched, monkeypatch):
    """Nothing the end of a search prints is cut to "…" on an 80-column terminal."""
    from rich.console import Console

    import tuner.cli.optimize as optimize_cli
    from tuner.cli.output import trial_table
    from tuner.cli.tournament import leaderboard_table

    result = searched[0]
    narrow = Console(width=80, record=True)
    monkeypatch.setattr(optimize_cli, "console", narrow)
    optimize_cli._report(result)
    narrow.print(trial_table(result.best))
    board = {"tournament": "digits-latency", "sort": "latency_p90_ms",
             "objectives": [{"metric": m} for m in OBJECTIVES],
             "data": [{"rank": n, "participant": name, "status": "verified",
                       "is_baseline": name is None, "variant": r.workload.variant,
                       "hardware_profile": r.hardware.profile, "config": r.config,
                       "metrics": r.metrics.model_dump()}
                      for n, (name, r) in enumerate([("a-participant-with-a-long-name",
                                                      result.best), (None, result.baseline)],
                                                     start=1)]}
    narrow.print(leaderboard_table(board))
    text = narrow.export_text()
    assert "a-participant" in text and "q/fp32" in text
    assert "…" not in text, [line for line in text.splitlines() if "…" in line]

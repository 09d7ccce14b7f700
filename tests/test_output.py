"""Terminal output: tables that fit 80 columns with short option labels, ``--wide`` with
every option under its full name, the live display's clocks, and what a search measures
first (each engine's one-line try)."""

from __future__ import annotations

import time

import pytest
from rich.console import Console

import tuner.cli.output as output
from tuner.cli.tournament import leaderboard_table
from tuner.trial.config import Configuration

INT8 = {"variant": "convnet-m", "backend": "ort", "precision": "int8-static", "threads": 2,
        "batch": 1, "hardware": "local", "ort_graph_optimization": "all",
        "per_channel": False}


def _board(participant: str) -> dict:
    configs = [INT8 | {"int8_op_types": "conv-matmul", "int8_keep_fp32": 2},
               INT8 | {"int8_op_types": "all", "int8_keep_fp32": 0}]
    return {"tournament": "convnet-demo", "sort": "latency_p90_ms",
            "objectives": [{"metric": "latency_p90_ms"}, {"metric": "quality_ratio"}],
            "data": [{"rank": n, "participant": participant, "status": "verified",
                      "is_baseline": False, "variant": c["variant"],
                      "hardware_profile": "local", "config": c,
                      "metrics": {"latency_p90_ms": 5.1, "quality_ratio": 0.998,
                                  "cost_per_million_usd": 0.18}}
                     for n, c in enumerate(configs, start=1)]}


@pytest.fixture
def terminal(monkeypatch) -> Console:
    console = Console(width=80, record=True)
    monkeypatch.setattr(output, "console", console)
    yield console
    output._set_wide(False)


def test_rows_differ_by_short_labels_at_80_columns(terminal: Console) -> None:
    output.print_table(leaderboard_table(_board("a-participant-with-a-long-name")))
    text = terminal.export_text()
    assert "…" not in text
    assert "ops=conv-matmul" in text and "keep=0 ops=all" in text and "keep=2" in text
    assert "int8_op_types" not in text  # the short label, not the key
    assert "per-ch" not in text  # the same in every row: nothing to tell apart
    assert max(len(line) for line in text.splitlines()) <= 80


def test_wide_shows_every_option_by_name_unfolded(terminal: Console) -> None:
    output._set_wide(True)
    output.print_table(leaderboard_table(_board("a-participant-with-a-long-name")))
    lines = terminal.export_text().splitlines()
    row = next(line for line in lines if "int8_keep_fp32=2" in line)
    for text in ("int8_op_types=conv-matmul", "ort_graph_optimization=all",
                 "per_channel=false"):
        assert text in row
    assert any("a-participant-with-a-long-name" in line for line in lines)
    assert "…" not in "\n".join(lines)


def test_live_view_shows_time_spent_left_and_each_running_trials_clock(monkeypatch) -> None:
    from tuner.cli import optimize as optimize_cli

    console = Console(width=120, record=True)
    monkeypatch.setattr(optimize_cli, "console", console)
    view = optimize_cli.LiveView(10, "latency_p90_ms")
    view.started -= 100  # 100 s into the search
    running = Configuration(variant="convnet-m", precision="int8-static", threads=2)
    view({"event": "running", "finished": 4, "running": [running], "best": None,
          "failures": 0})
    view.since[running.digest()] = time.monotonic() - 12
    view.took[("ort", "int8-static")] = [20.0, 30.0]
    console.print(view.render())
    text = console.export_text()
    assert "1 min 40 s elapsed" in text
    assert "~2 min 30 s left" in text  # 100 s for 4 trials, 6 to go
    assert "12 s (such trials took ~25 s)" in text


def test_a_search_measures_each_engines_one_line_try_first() -> None:
    from tuner.backends.registry import backend_names, runs_precision
    from tuner.search.loop import strong_defaults

    baseline = Configuration(variant="convnet-m", threads=2)
    defaults = strong_defaults("convnet-m", baseline)
    tried = [(c.backend, str(c.precision.value)) for c in defaults[2:]]
    for name in backend_names():
        assert (name, "fp32") in tried or name == "ort"
        assert ((name, "int8-static") in tried) == (name in runs_precision("int8-static"))
    assert all(c.threads == 2 for c in defaults[2:])
    # the default backend's int8 first, then the peers': the cheapest likely win leads
    assert tried[0] == ("ort", "int8-static")

"""optimize() with a real local Ray and a real SQLite Optuna storage.

Warm start is off here: these tests check the search mechanics, and the session's shared
knowledge store would otherwise answer configurations other tests measured.
"""

from __future__ import annotations

import json
import stat

import pytest

from tests.conftest import FAST_PROTOCOL
from tuner.errors import ConfigError, ConstraintError, HardwareError
from tuner.hardware import load_profile
from tuner.search.optimize import optimize

SMALL = {"backend": "ort", "batch": 1, "threads": 1, "ort_graph_optimization": "all",
         "precision": ["fp32", "int8-dynamic"], "per_channel": False}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    import ray

    ray.shutdown()
    ray.init(num_cpus=2, resources={"hw:local": 1}, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _optimize(tmp_path, **kwargs):
    values = {"workload": "digits", "objectives": ["latency_p90_ms"],
              "constraints": ["quality_ratio >= 0.95"], "trials": 4, "space": SMALL,
              "storage": f"sqlite:///{tmp_path / 'study.db'}", "study": "s",
              "protocol": FAST_PROTOCOL, "warm_start": False} | kwargs
    return optimize(**values)


def test_search_finds_a_feasible_best_and_records_everything(tmp_path, digits):
    result = _optimize(tmp_path, trials=5)
    # The baseline takes every core a trial may use: the local host's, capped by Ray's two.
    cores = min(2, load_profile("local").cores)
    assert result.baseline.ok and result.baseline.config["threads"] == cores
    assert result.baseline.config["variant"] == digits.reference
    assert result.best is not None and result.best.ok
    assert result.best.metrics.quality_ratio >= 0.95
    assert 0 < result.n_trials <= 5 and len(result.feasible) >= 1
    front = result.pareto
    assert not front.empty and "latency_p90_ms" in front.columns
    record = json.loads(result.to_json(tmp_path / "out.json"))
    assert {"baseline", "best", "pareto", "trials", "n_trials", "n_feasible", "n_failed",
            "study", "storage"} <= set(record)
    assert all(t["workload"]["sha256"] == digits.sha256 for t in record["trials"])
    digests = [t["config_digest"] for t in record["trials"]]
    assert len(digests) == len(set(digests)), "a configuration was measured twice"
    # Every trial but the baseline measures within a budget: a minute, or twice the
    # baseline's measurement where that is longer.
    assert result.baseline.measurement["protocol"]["max_measure_s"] is None
    budget = max(60.0, 2 * result.baseline.timings["measure_wall_s"])
    assert all(r.measurement["protocol"]["max_measure_s"] == pytest.approx(budget)
               for r in result.results if r.measurement)


def test_resume_keeps_finished_trials_and_measures_only_new_ones(tmp_path):
    first = _optimize(tmp_path, trials=3)
    ids = {r.trial_id for r in first.results}
    second = _optimize(tmp_path, trials=5)
    assert ids <= {r.trial_id for r in second.results}
    assert second.baseline.trial_id == first.baseline.trial_id
    assert len({r.config_digest for r in second.results}) == len(second.results)


def test_multi_objective_pareto_front(tmp_path):
    result = _optimize(tmp_path, objectives=["latency_p90_ms", "model_size_bytes"], trials=5,
                       space=SMALL | {"variant": ["linear", "mlp-64"]})
    assert len(result.front) >= 1
    for a in result.front:
        for b in result.front:
            assert not (b.metrics.latency_p90_ms < a.metrics.latency_p90_ms
                        and b.metrics.model_size_bytes < a.metrics.model_size_bytes)


def test_nothing_feasible_reports_the_nearest(tmp_path):
    result = _optimize(tmp_path, constraints=["latency_p90_ms < 0.0000001"], trials=2)
    assert result.best is None and result.feasible == []
    assert result.nearest and "latency_p90_ms < 1e-07" in result.nearest[0]["unmet"][0]


def test_an_estimated_power_never_satisfies_a_power_constraint(tmp_path):
    result = _optimize(tmp_path, constraints=["power_w <= 1000"], trials=2)
    assert result.best is None
    assert "estimate" in result.nearest[0]["unmet"][0]


def test_crashing_workers_are_failed_trials_and_the_study_finishes(tmp_path, monkeypatch):
    import ray

    crasher = tmp_path / "crash.sh"
    crasher.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crasher.chmod(crasher.stat().st_mode | stat.S_IXUSR)
    ray.shutdown()  # workers inherit the environment at start
    monkeypatch.setenv("PODIUM_WORKER_PYTHON", str(crasher))
    ray.init(num_cpus=2, resources={"hw:local": 1}, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    try:
        result = _optimize(tmp_path, trials=3, space=SMALL | {"variant": "linear"})
    finally:
        ray.shutdown()
        monkeypatch.delenv("PODIUM_WORKER_PYTHON")
        ray.init(num_cpus=2, resources={"hw:local": 1}, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    assert result.n_trials >= 2 and result.n_failed == result.n_trials
    assert all("SIGSEGV" in r.error for r in result.results)
    assert not result.baseline.ok


def test_quality_gate_and_pruning_keep_untimed_trials_out_of_the_front(tmp_path, digits):
    """Behind the abort line a trial's probe stops it before its quality is even scored;
    under the quality floor a trial is never timed; neither is a measured result, and
    Optuna hears PRUNED and FAIL."""
    import optuna

    from tuner.trial.config import Configuration
    from tuner.trial.measure import Protocol
    from tuner.trial.results import TrialState
    from tuner.trial.run import run_trial

    space = {"backend": "ort", "batch": 1, "threads": 1, "ort_graph_optimization": "all",
             "variant": ["linear", "mlp-64"], "precision": "fp32"}
    result = _optimize(tmp_path, trials=2, space=space, sampler="grid",
                       constraints=["quality_ratio >= 0.995"], prune_factor=1e-6)
    states = {r.config["variant"]: r for r in result.results}
    assert result.baseline.ok  # never gated
    for r in states.values():
        # An artifact whose quality an earlier trial scored (the quality cache) meets the
        # floor first; otherwise the probe comes before any scoring.
        reused = "quality_reused" in r.measurement
        assert r.state in (TrialState.PRUNED, TrialState.INFEASIBLE), r
        assert r.metrics.latency_p90_ms is None
        if r.state is TrialState.INFEASIBLE:
            assert reused and r.metrics.quality_ratio < 0.995
            continue
        assert (r.metrics.quality is None) != reused and r.quality_known == reused
        assert r.measurement["pruned"]["probe_p50_ms"] > r.measurement["pruned"][
            "abort_p50_ms"] == pytest.approx(1e-6 * result.baseline.metrics.latency_p90_ms)
    assert all(r.ok for r in result.front) and not set(states) & {
        r.config["variant"] for r in result.front}
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}")
    told = {t.state for t in study.trials if t.params}
    assert told <= {optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED}
    assert {g["outcome"] for g in result.time_by_outcome} <= {"pruned", "infeasible",
                                                               "feasible"}
    # Under the floor: quality scored, nothing timed.
    floored = run_trial(digits, Configuration.parse({"variant": "linear"}),
                        protocol=Protocol(quality_floor=0.995))
    assert floored.state is TrialState.INFEASIBLE and "not timed" in floored.error
    assert floored.metrics.quality_ratio < 0.995 and floored.measurement["timed"] is False
    assert floored.metrics.latency_p90_ms is None and floored.quality_known


def test_a_multi_objective_front_prunes_a_candidate_it_dominates_with_margin(digits):
    """With objectives latency and quality, a candidate no better in quality than a front
    point stops timing once its probe is k× slower than that point; a candidate better in
    quality than every point is timed in full, however slow."""
    from dataclasses import replace

    from tuner.trial.config import Configuration
    from tuner.trial.measure import front_abort_line
    from tuner.trial.results import TrialState
    from tuner.trial.run import run_trial

    point = {"latency_p90_ms": 1e-6, "quality_ratio": 1.0}
    gated = replace(FAST_PROTOCOL, abort_front=(point,), abort_factor=3.0)
    assert front_abort_line(gated, {"quality_ratio": 0.99}) == pytest.approx(3e-6)
    assert front_abort_line(gated, {"quality_ratio": 1.01}) is None  # better: not dominated
    assert front_abort_line(gated, {"quality_ratio": None}) is None
    assert front_abort_line(replace(gated, abort_front=(point, point | {
        "latency_p90_ms": 1e-7})), {"quality_ratio": 0.9}) == pytest.approx(3e-7)
    config = Configuration.parse({"variant": "linear"})
    pruned = run_trial(digits, config, protocol=gated)
    assert pruned.state is TrialState.PRUNED and "front point" in pruned.error
    assert pruned.measurement["pruned"]["abort_p50_ms"] == pytest.approx(3e-6)
    worse_front = replace(gated, abort_front=({"latency_p90_ms": 1e-6, "quality_ratio": 0.5},))
    assert run_trial(digits, config, protocol=worse_front).state is TrialState.COMPLETE


def test_a_measurement_that_cannot_fit_its_budget_is_pruned_before_scoring(digits):
    """A candidate whose protocol minimums at its own call time do not fit the measurement
    budget is neither scored nor timed (``pruned``, never a result); one that fits is
    measured in full, its latency timing ended where the budget runs out."""
    from dataclasses import replace

    from tuner.search.breakdown import outcome
    from tuner.trial.config import Configuration
    from tuner.trial.measure import least_seconds, within
    from tuner.trial.results import TrialState
    from tuner.trial.run import run_trial

    config = Configuration.parse({"variant": "linear"})
    stopped = run_trial(digits, config, protocol=replace(FAST_PROTOCOL, max_measure_s=1e-3))
    assert stopped.state is TrialState.PRUNED and "measurement budget" in stopped.error
    cap = stopped.measurement["capped"]
    assert cap["scoring_calls"] == digits.n_eval and cap["least_s"] > 1e-3
    assert stopped.metrics.quality is None and stopped.metrics.latency_p90_ms is None
    assert outcome(stopped, [])[1].startswith("too slow for the measurement budget")
    measured = run_trial(digits, config, protocol=replace(FAST_PROTOCOL, max_measure_s=60.0))
    assert measured.state is TrialState.COMPLETE and "capped" not in measured.measurement
    # 100 ms a call: 50 scoring calls, the 20-call warm-up, 64 timed calls and 10 blocks.
    protocol = replace(FAST_PROTOCOL, max_measure_s=30.0, warmup_calls=20, p90_calls=64,
                       blocks=10, latency_s=1.0, warmup_s=0.5, throughput_s=1.0,
                       max_latency_s=60.0)
    assert least_seconds(0.1, 50, protocol) == pytest.approx(5 + 2 + 6.4 + 1)
    # 12 s spent: 30 − 12 − 2 (warm-up) − 1 (throughput) = 15 s left for latency timing.
    assert within(protocol, 12.0, 0.1).max_latency_s == pytest.approx(15.0)
    assert within(protocol, 29.0, 0.1).max_latency_s == protocol.latency_s  # never under it
    assert within(replace(protocol, max_measure_s=None), 29.0, 0.1) == replace(
        protocol, max_measure_s=None)


def test_timing_ends_at_the_p90_minimum_behind_the_incumbent_or_without_p99(digits):
    """On a p90 search a candidate whose p90 at the p90 minimum is past the line cannot
    win: its timing ends there (a p90 from ≥ 64 calls and the time minimum, p99 and
    throughput not reported, ``behind`` says so); one within the line is timed in full.
    A confirmation round of a p90 search (``time_p99`` off) also stops at the p90 minimum."""
    from dataclasses import replace

    from tuner.trial.config import Configuration
    from tuner.trial.results import TrialState
    from tuner.trial.run import run_trial

    config = Configuration.parse({"variant": "linear"})
    protocol = replace(FAST_PROTOCOL, latency_s=0.05, p99_calls=20_000)
    behind = run_trial(digits, config, protocol=replace(protocol, behind_p90_ms=1e-6))
    assert behind.state is TrialState.COMPLETE and behind.metrics.latency_p90_ms > 1e-6
    assert behind.metrics.latency_p99_ms is None and behind.metrics.throughput_per_s is None
    assert behind.metrics.cost_per_million_usd is None
    calls = behind.measurement["behind"]["calls"]
    assert protocol.p90_calls <= calls < protocol.p99_calls
    assert behind.measurement["behind"]["behind_p90_ms"] == 1e-6
    ahead = run_trial(digits, config, protocol=replace(protocol, behind_p90_ms=1e6))
    assert ahead.metrics.latency_p99_ms is not None and "behind" not in ahead.measurement
    assert ahead.metrics.throughput_per_s > 0
    assert ahead.measurement["calls"] >= protocol.p99_calls
    p90_only = run_trial(digits, config, protocol=replace(protocol, time_p99=False))
    assert p90_only.metrics.latency_p90_ms is not None
    assert p90_only.metrics.latency_p99_ms is None and "behind" not in p90_only.measurement
    assert protocol.p90_calls <= p90_only.measurement["calls"] < protocol.p99_calls


def test_the_best_is_confirmed_side_by_side_in_fresh_processes(tmp_path):
    """The top candidates and the baseline are re-measured in interleaved rounds, each a
    trial of its own (a fresh worker process, a new trial id, the build a cache hit); the
    best and its speed-up come from those medians, and the JSON's best carries them."""
    space = SMALL | {"variant": ["linear", "mlp-64"]}
    result = _optimize(tmp_path, trials=3, space=space, confirm_top=2, confirm_rounds=2)
    confirmation = result.confirmation
    assert confirmation is not None and confirmation["rounds"] == 2
    rows = [confirmation["baseline"], *confirmation["candidates"]]
    assert len(confirmation["candidates"]) == min(2, len(result.feasible))
    searched = {r.trial_id for r in result.results} | {result.baseline.trial_id}
    for row in rows:  # a round is a value, or None where it failed or was unstable
        assert len(row["values"]) == len(row["latency_p90_ms"]) == 2
        assert len(row["remeasured_trial_ids"]) == 2 - row["unusable"].count("failed")
        assert not set(row["remeasured_trial_ids"]) & searched  # new measurements
        assert row["confirmed"] == (None not in row["values"])  # most of 2 rounds: both
        if row["confirmed"]:
            assert row["median"] == pytest.approx(sum(row["values"]) / 2)
    confirmed = [r for r in confirmation["candidates"] if r["confirmed"]]
    record = json.loads(result.to_json())
    assert record["best"]["confirmation"] == confirmation
    if not confirmed:  # this VM sometimes halves a µs-scale model's speed mid-run
        pytest.skip("no candidate measured stable in every round: nothing to confirm")
    best = min(confirmed, key=lambda r: r["median"])
    assert result.best.trial_id == best["trial_id"] == confirmation["best_trial_id"]
    if confirmation["baseline"]["confirmed"]:
        assert confirmation["speedup_p90"] == pytest.approx(
            (sum(confirmation["baseline_latency_p90_ms"]) / 2)
            / (sum(confirmation["latency_p90_ms"]) / 2))


def test_the_default_space_fits_the_request(digits):
    """Batches only where a per-sample metric matters; TVM (and its untuned builds) only
    where the space names it; the request's quality floor sets accuracy control's drop."""
    from tuner.hardware import load_profile
    from tuner.search.optimize import plan_space
    from tuner.search.space import describe
    from tuner.trial.constraints import parse_constraint

    profiles = [load_profile("aws-c7a.large")]
    floor = [parse_constraint("quality_ratio >= 0.98")]

    def plan(objectives, constraints=(), space=None):
        return plan_space(digits, objectives, list(constraints), profiles, cores=2, space=space)

    latency = plan(["latency_p90_ms"], floor)
    assert latency.batch == [1] and "tvm" not in latency.backends
    assert latency.options["max_drop"] == [0.02]
    assert plan(["throughput_per_s"]).batch == [1, 8, 32]
    assert plan(["latency_p90_ms"], [parse_constraint("cost_per_million_usd <= 1")]).batch == [
        1, 8, 32]
    tuned = plan(["latency_p90_ms"], space={"backend": ["ort", "tvm"]})
    assert tuned.backends == ["ort", "tvm"] and tuned.options["tvm_tuning_trials"] == [64]
    asked = plan(["latency_p90_ms"], space={"tvm_tuning_trials": [0, 64]})
    assert "tvm" in asked.backends and {c.tvm_tuning_trials for c in asked.configurations()
                                        if c.backend == "tvm"} == {0, 64}
    rows = dict(describe(latency))
    assert rows["batch"] == "1" and "name it in the space" in rows["left out: tvm"]
    assert int(rows["configurations"]) == latency.size()


def test_dry_run_prints_the_space_and_runs_nothing(podium_home, digits, capsys):
    from tuner.cli import main

    def files() -> dict[str, float]:
        return {str(p): p.stat().st_mtime for p in podium_home.rglob("*") if p.is_file()}

    before = files()
    assert main(["optimize", "--workload", "digits", "--dry-run",
                 "--constraint", "quality_ratio >= 0.99"]) == 0
    out = capsys.readouterr().out
    assert "search space" in out and "left out: tvm" in out
    assert files() == before  # no study, no knowledge, no artifact


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"constraints": ["quality_ratio >> 1"]}, ConstraintError),
    ({"constraints": ["speed < 1"]}, ConstraintError),
    ({"objectives": ["speed"]}, ConfigError),
    ({"space": {"colour": "red"}}, ConfigError),
    ({"space": {"precision": "int4"}}, ConfigError),
    ({"space": {"backend": "tvm", "precision": "int8-static"}}, ConfigError),
    ({"sampler": "magic"}, ConfigError),
    ({"hardware": ["aws-c7i.large"]}, HardwareError),
    ({"hardware": ["cray-1"]}, HardwareError),
])
def test_bad_requests_are_refused(tmp_path, kwargs, error):
    with pytest.raises(error):
        _optimize(tmp_path, **kwargs)


def test_a_study_for_another_search_is_not_resumed(tmp_path):
    _optimize(tmp_path, trials=1)
    with pytest.raises(ConfigError, match="different search"):
        _optimize(tmp_path, trials=1, constraints=["quality_ratio >= 0.5"])

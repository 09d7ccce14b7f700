"""Faults during a search, injected from outside.

``optimize`` SIGKILLed over and over and resumed: nothing finished is lost, nothing is
measured twice, and the end result is the uninterrupted run's. A Ray worker killed
mid-trial, a trial that hangs, a trial that exhausts its memory limit, and a Ray task past
its deadline: the study records the trial as FAILED with why, the other trials complete,
and nothing the dead trial started is left running.

Faults are injected the way the crash test in test_search.py does it: workers run through
``PODIUM_WORKER_PYTHON``, here a shell script that does what ``FAULTS/fault`` says to the
first worker whose spec contains every line of ``FAULTS/match``, and runs the rest normally.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import workloads
from tests import onnx_models
from tests.conftest import FAST_PROTOCOL
from tuner.search.optimize import optimize
from tuner.search.study import finished_results
from tuner.trial.results import TrialState
from tuner.trial.subprocess_runner import MEMORY_ENV, WORKER_PYTHON_ENV, remove_stale_worker_dirs

ROOT = Path(__file__).resolve().parents[1]

SPACE = {"backend": "ort", "batch": 1, "threads": 1, "ort_graph_optimization": "all",
         "variant": "linear", "precision": ["fp32", "int8-dynamic"], "per_channel": False,
         "int8_keep_fp32": 0, "int8_op_types": "all"}
WORKER_MEMORY = 768 * 2**20
MEASURE = '"artifact_dir"'  # only a measure task's spec has it; builds may be cache hits

DISPATCHER = """#!/bin/sh
# argv: -m tuner.trial.worker SPEC OUT
faults={faults}
normal() {{ exec {python} "$@"; }}
[ -f "$faults/fault" ] || normal "$@"
while IFS= read -r pattern; do grep -qF -- "$pattern" "$3" || normal "$@"; done < "$faults/match"
mkdir "$faults/fired" 2>/dev/null || normal "$@"
case "$(cat "$faults/fault")" in
  kill-ray-worker)
    echo $$ > "$faults/worker.pid"; echo "$4" > "$faults/out.path"
    # once the real worker below is measuring, SIGKILL the Ray worker that started it
    (while ! grep -q onnxruntime /proc/$$/maps 2>/dev/null; do sleep 0.05; done
     kill -KILL $PPID) &
    normal "$@";;
  hang)
    sleep 600 & echo $! > "$faults/grandchild.pid"
    wait;;
esac
"""


# Six configurations, (linear, mlp-64, mlp-2x256) x (fp32, int8-dynamic), searched
# exhaustively by the grid sampler, so both runs measure the same set.
GRID = SPACE | {"variant": ["linear", "mlp-64", "mlp-2x256"]}
KILLS = 6
SEARCH = f"""
import json, sys
from tests.conftest import FAST_PROTOCOL
from tuner.search.optimize import optimize
from tuner.trial.constraints import parse_constraints
constraints = ["quality_ratio >= 0.95"]
# No pruning: with both searches timing on the same two cores at once, whether a probe lands
# past 3× the incumbent is the other search's doing, not anything a kill could lose.
result = optimize("digits", ["latency_p90_ms"], constraints, trials=20, space={GRID!r},
                  sampler="grid", storage=sys.argv[1], study="k", protocol=FAST_PROTOCOL,
                  warm_start=False, prune_factor=None)
parsed = parse_constraints(constraints)
# Quality alone: both searches measure on the same two cores at once, so a stability verdict
# (which unmet() also applies) may differ between them without anything being lost.
json.dump({{"meets": {{r.config_digest: r.ok and all(c.violation(r.metric(c.metric)) <= 0
                                                  for c in parsed) for r in result.results}},
           "trials": [[r.trial_id, r.config_digest] for r in result.results],
           "feasible": [r.config_digest for r in result.feasible],
           "why": {{r.config_digest: [str(r.state), r.error, r.metrics.quality_ratio,
                                     str(r.metrics.stability)]
                    for r in result.results}}}}, open(sys.argv[2], "w"))
"""


def _search_process(db: Path, out: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in (WORKER_PYTHON_ENV, MEMORY_ENV)}
    return subprocess.Popen([sys.executable, "-c", SEARCH, f"sqlite:///{db}", str(out)],
                            cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _states(db: Path) -> dict[str, int]:
    """Optuna trial states → counts, read straight from the SQLite file (cheap to poll)."""
    import sqlite3

    if not db.exists():
        return {}
    try:
        with sqlite3.connect(db, timeout=5) as connection:
            return dict(connection.execute("SELECT state, COUNT(*) FROM trials GROUP BY state"))
    except sqlite3.OperationalError:  # tables not created yet
        return {}


def _measured(db: Path) -> dict[str, str]:
    """Trial id → config digest of every result the study holds (twins share an id)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name="k", storage=f"sqlite:///{db}")
    except KeyError:  # killed before the study was created
        return {}
    return {r.trial_id: r.config_digest for r in finished_results(study)}


def _kill_at_a_random_point(process: subprocess.Popen, db: Path, rng: random.Random) -> bool:
    """SIGKILL the search (its whole process group) at a seeded random point: during
    start-up, or while a trial is in flight (optionally after one more finished). Returns
    False when the search ended first."""
    deadline = time.monotonic() + 180
    if rng.random() < 0.3:
        ready = lambda: True  # noqa: E731
    else:
        target = sum(_states(db).get(s, 0) for s in ("COMPLETE", "FAIL")) + rng.randint(0, 1)
        ready = lambda: (sum(_states(db).get(s, 0) for s in ("COMPLETE", "FAIL")) >= target  # noqa: E731
                         and _states(db).get("RUNNING", 0) > 0)
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    try:
        process.wait(timeout=rng.uniform(0.5, 4.0))
        return False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return True


@pytest.mark.slow
def test_optimize_killed_again_and_again_loses_nothing_and_ends_as_if_never_killed(tmp_path):
    # the uninterrupted reference runs alongside (only quality decides feasibility here)
    reference = _search_process(tmp_path / "reference.db", tmp_path / "reference.json")
    db = tmp_path / "killed.db"
    rng = random.Random(8)
    kills, runs, interrupted, seen = 0, 0, 0, {}
    while kills < KILLS:
        runs += 1
        assert runs <= 3 * KILLS, "the search kept ending before it could be killed"
        process = _search_process(db, tmp_path / "killed.json")
        killed = _kill_at_a_random_point(process, db, rng)
        kills += killed
        interrupted += killed and _states(db).get("RUNNING", 0) > 0
        now = _measured(db)
        assert seen.items() <= now.items(), "a finished trial was lost"
        seen = now
    final = _search_process(db, tmp_path / "killed.json")
    assert final.wait(timeout=300) == 0
    assert reference.wait(timeout=300) == 0
    got = json.loads((tmp_path / "killed.json").read_text())
    expected = json.loads((tmp_path / "reference.json").read_text())

    assert interrupted >= 1, "no kill landed while a trial was in flight"
    measured = _measured(db)
    assert seen.items() <= measured.items()
    assert len(set(measured.values())) == len(measured), "a configuration was measured twice"
    ids = [trial_id for trial_id, _ in got["trials"]]
    assert len(ids) == len(set(ids)) and set(ids) == set(measured)
    assert len(expected["meets"]) == 6 and any(expected["meets"].values())
    assert got["meets"] == expected["meets"], (got["why"], expected["why"])
    assert set(got["feasible"]) <= {d for d, ok in got["meets"].items() if ok}


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    """A local Ray whose workers run every build/measure through the dispatcher."""
    import ray

    folder = tmp_path_factory.mktemp("faults")
    script = folder / "python.sh"
    script.write_text(DISPATCHER.format(faults=folder, python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    saved = {k: os.environ.get(k) for k in (WORKER_PYTHON_ENV, MEMORY_ENV)}
    os.environ[WORKER_PYTHON_ENV] = str(script)  # Ray workers inherit it at start
    os.environ[MEMORY_ENV] = str(WORKER_MEMORY)
    ray.shutdown()
    ray.init(num_cpus=2, resources={"hw:local": 1}, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    yield folder
    ray.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _arm(folder: Path, fault: str, *patterns: str) -> None:
    for name in ("fault", "match", "worker.pid", "out.path", "grandchild.pid"):
        (folder / name).unlink(missing_ok=True)
    if (folder / "fired").exists():
        (folder / "fired").rmdir()
    (folder / "match").write_text("".join(f"{p}\n" for p in patterns))
    (folder / "fault").write_text(fault)


def _gone(pid: int, within_s: float = 10.0) -> bool:
    """True once ``pid`` no longer runs (exited, or a zombie nobody reaped yet)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def _search(tmp_path, workload="digits", **kwargs):
    values = {"objectives": ["latency_p90_ms"], "constraints": ["quality_ratio >= 0.5"],
              "trials": 4, "space": SPACE, "sampler": "grid",
              "storage": f"sqlite:///{tmp_path / 'study.db'}", "study": "faults",
              "protocol": FAST_PROTOCOL, "warm_start": False} | kwargs
    return optimize(workload, **values)


def _answered(result) -> bool:
    """The study has a best configuration, unless every complete trial was measured unstable
    (a µs-scale model on a shared VM sometimes is; then no answer is the honest one)."""
    complete = [r for r in result.results if r.ok]
    return result.best is not None or (
        bool(complete) and all(str(r.metrics.stability) == "unstable" for r in complete))


def _by_precision(result) -> dict[str, object]:
    return {r.config["precision"]: r for r in result.results}


@pytest.mark.slow
def test_a_ray_worker_killed_mid_trial_is_a_failed_trial(tmp_path, faults):
    _arm(faults, "kill-ray-worker", MEASURE, '"precision": "int8-dynamic"')
    result = _search(tmp_path)
    assert (faults / "fired").exists(), "the fault was never injected"
    trials = _by_precision(result)
    assert set(trials) == {"fp32", "int8-dynamic"} and result.n_trials == 2
    killed = trials["int8-dynamic"]
    assert killed.state is TrialState.FAILED and killed.failed_stage == "executor"
    assert "WorkerCrashedError" in killed.error, killed.error
    assert trials["fp32"].ok and result.baseline.ok and _answered(result)
    # the measuring process the dead Ray worker started dies with it (PR_SET_PDEATHSIG)
    # instead of measuring on as an orphan and writing its result
    assert _gone(int((faults / "worker.pid").read_text()), within_s=2)
    time.sleep(3)
    out = Path((faults / "out.path").read_text().strip())
    assert not out.exists()
    remove_stale_worker_dirs()  # what the next trial does first: its folder goes too
    assert not out.parent.exists()


@pytest.mark.slow
def test_a_hanging_trial_is_failed_at_its_time_limit(tmp_path, faults):
    _arm(faults, "hang", MEASURE, '"precision": "int8-dynamic"')
    start = time.monotonic()
    result = _search(tmp_path, trial_timeout_s=15)
    assert (faults / "fired").exists(), "the fault was never injected"
    trials = _by_precision(result)
    hung = trials["int8-dynamic"]
    assert hung.state is TrialState.FAILED and hung.failed_stage == "measure"
    assert "measure ran past its time limit of 15 s" in hung.error
    assert trials["fp32"].ok and _answered(result)
    assert time.monotonic() - start < 300
    # the hung worker's own child is killed with its process group
    assert _gone(int((faults / "grandchild.pid").read_text()), within_s=2)


def test_a_trial_that_exhausts_memory_is_failed_out_of_memory(tmp_path, faults):
    """A real model whose batch-1024 run needs 2 GiB against a 768 MiB worker limit."""
    model = onnx_models.wide_model(tmp_path / "wide.onnx")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "wide.npz", x=rng.normal(size=(10, 8)).astype(np.float32))
    wide = workloads.from_files(model, tmp_path / "wide.npz", name="wide")
    _arm(faults, "none", "never matches")
    result = _search(tmp_path, workload=wide, constraints=["quality_ratio >= 0.9"],
                     space={"backend": "ort", "precision": "fp32", "threads": 1,
                            "ort_graph_optimization": "all", "batch": [1, 1024]})
    by_batch = {r.config["batch"]: r for r in result.results}
    assert set(by_batch) == {1, 1024}
    hog = by_batch[1024]
    assert hog.state is TrialState.FAILED and hog.failed_stage == "measure"
    assert "out of memory" in hog.error and "768 MiB" in hog.error, hog.error
    assert by_batch[1].ok and _answered(result)


def test_a_ray_task_past_its_deadline_is_cancelled(tmp_path, faults, monkeypatch, digits):
    """The Ray-level deadline (for a task stuck outside its worker subprocess)."""
    import ray

    from tuner.search import executor as executor_module
    from tuner.trial.config import Configuration

    def stuck(*args: object) -> str:  # defined here so Ray pickles it by value
        import time

        time.sleep(600)
        return ""

    monkeypatch.setattr(executor_module, "DEADLINE_SLACK_S", 1.0)
    executor = executor_module.RayExecutor(timeout_s=1.0, protocol=FAST_PROTOCOL)
    executor.start()
    executor._remote = ray.remote(max_retries=0)(stuck)
    executor.submit("stuck", digits, Configuration(variant="linear"))
    done = []
    give_up = time.monotonic() + 60
    while not done and time.monotonic() < give_up:
        done = executor.wait(0.5)
    executor.stop()
    assert [(r.key, reason) for r, reason in done] == [
        ("stuck", "trial passed its deadline of 4 s and was cancelled")]


def test_a_staging_folder_left_by_a_killed_build_is_swept(digits, tmp_path, monkeypatch):
    """A build killed with its process leaves ``.staging-<pid>-*``; the next build removes
    it (a live owner's folder stays). A fresh home, so the build is not a cache hit."""
    from tuner.hardware import load_profile
    from tuner.trial.build import STAGING_PREFIX, build_artifact
    from tuner.trial.config import Configuration
    from workloads.paths import cache_dir

    monkeypatch.setenv("PODIUM_HOME", str(tmp_path / "home"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = cache_dir("artifacts") / f"{STAGING_PREFIX}{dead.pid}-abc"
    mine = cache_dir("artifacts") / f"{STAGING_PREFIX}{os.getpid()}-abc"
    for folder in (orphan, mine):
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(b"half-written")
    build_artifact(digits, Configuration(variant="linear", threads=1), load_profile("local"))
    assert not orphan.exists() and mine.exists()
    shutil.rmtree(mine)

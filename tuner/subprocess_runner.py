"""Run one worker task (:mod:`tuner.worker`) in a fresh Python process.

Turns every way a worker can fail into :class:`TrialFailed` with a one-line reason: an
error the worker reported, a crash (signal), running past ``timeout_s``, or no result.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tuner.errors import TrialFailed

STDERR_TAIL = 400
# The interpreter for workers; a deployment (or a fault-injection test) may point it elsewhere.
WORKER_PYTHON_ENV = "PODIUM_WORKER_PYTHON"


def run_worker(spec: dict[str, Any], *, timeout_s: float | None,
               threads: int | None = None) -> dict[str, Any]:
    """Run ``spec`` in ``python -m tuner.worker`` and return its result dict.

    ``threads`` caps the math libraries' own thread pools in the child (OpenMP, BLAS,
    TVM), so only the cores the task reserved are used.
    """
    stage = spec["task"]
    env = dict(os.environ)
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "TVM_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
        env["OPENBLAS_NUM_THREADS"] = "1"
    with tempfile.TemporaryDirectory(prefix="podium-worker-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(spec))
        python = os.environ.get(WORKER_PYTHON_ENV) or sys.executable
        command = [python, "-m", "tuner.worker", str(spec_path), str(out_path)]
        try:
            done = subprocess.run(command, env=env, timeout=timeout_s, capture_output=True,
                                  text=True, errors="replace", check=False)
        except subprocess.TimeoutExpired:
            raise TrialFailed(f"{stage} ran past its time limit of {timeout_s:g} s",
                              stage=stage) from None
        if done.returncode < 0:
            name = signal.Signals(-done.returncode).name
            raise TrialFailed(f"{stage} worker crashed with {name}{_tail(done.stderr)}",
                              stage=stage)
        if not out_path.exists():
            raise TrialFailed(f"{stage} worker exited with code {done.returncode} and no "
                              f"result{_tail(done.stderr)}", stage=stage)
        result = json.loads(out_path.read_text())
    if "error" in result:
        raise TrialFailed(result["error"]["message"], stage=result["error"]["stage"])
    return result


def _tail(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return f": {lines[-1][-STDERR_TAIL:]}" if lines else ""

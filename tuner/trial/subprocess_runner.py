"""Run one worker task (:mod:`tuner.trial.worker`) in a fresh Python process.

Turns every way a worker can fail into :class:`TrialFailed` with a one-line reason: an
error the worker reported, running out of memory, a crash (signal), running past
``timeout_s``, or no result.

Containment: the worker runs in its own process group, which is killed when the worker
exits, times out or the caller is interrupted, so nothing it started outlives it; it caps
its own memory (``RLIMIT_DATA``, :data:`MEMORY_ENV`, default the machine's physical memory)
and dies with the process that started it (``PR_SET_PDEATHSIG``), e.g. a killed Ray worker.
The folder a killed caller could not clean up is removed by the next worker's caller.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tuner.errors import ConfigError, TrialFailed

STDERR_TAIL = 400
# The interpreter for workers; a deployment (or a fault-injection test) may point it elsewhere.
WORKER_PYTHON_ENV = "PODIUM_WORKER_PYTHON"
# Bytes of memory a worker may allocate; 0 for no limit; default the physical memory.
MEMORY_ENV = "PODIUM_WORKER_MEMORY_BYTES"
OUT_OF_MEMORY = "out of memory"
_POLL_S = 0.02
_DIR_PREFIX = "podium-worker-"


def memory_limit() -> int | None:
    """The workers' memory limit in bytes (None: unlimited), from :data:`MEMORY_ENV`."""
    text = os.environ.get(MEMORY_ENV, "").strip()
    if not text:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(f"{MEMORY_ENV}={text!r} is not a whole number of bytes (0: no limit)")
    return value or None


def out_of_memory_reason(stage: str, detail: str = "") -> str:
    limit = memory_limit()
    shown = f"{limit / 2**20:.0f} MiB" if limit else "none"
    return (f"{stage} ran {OUT_OF_MEMORY} (worker memory limit {shown}, {MEMORY_ENV})"
            f"{': ' + detail if detail else ''}")


def run_worker(spec: dict[str, Any], *, timeout_s: float | None,
               threads: int | None = None) -> dict[str, Any]:
    """Run ``spec`` in ``python -m tuner.trial.worker`` and return its result dict.

    ``threads`` caps the math libraries' own thread pools in the child (OpenMP, BLAS,
    TVM), so only the cores the task reserved are used. Call it from a thread that lives
    until it returns (Ray tasks and the CLI use the main thread): the worker dies with the
    thread that started it.
    """
    stage = spec["task"]
    env = dict(os.environ)
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "TVM_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
        env["OPENBLAS_NUM_THREADS"] = "1"
    spec = spec | {"memory_limit_bytes": memory_limit(), "parent_pid": os.getpid()}
    remove_stale_worker_dirs()
    with tempfile.TemporaryDirectory(prefix=owned_prefix(_DIR_PREFIX)) as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        err_path = Path(tmp) / "stderr.txt"
        spec_path.write_text(json.dumps(spec))
        python = os.environ.get(WORKER_PYTHON_ENV) or sys.executable
        command = [python, "-m", "tuner.trial.worker", str(spec_path), str(out_path)]
        with err_path.open("w") as stderr:
            process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=stderr,
                                       process_group=0)
        try:
            finished = _wait_unreaped(process.pid, timeout_s)
        finally:  # on return, timeout or interrupt: nothing the worker started survives it
            _kill_group(process.pid)
            returncode = process.wait()
        stderr_text = err_path.read_text(errors="replace")
        if not finished:
            raise TrialFailed(f"{stage} ran past its time limit of {timeout_s:g} s",
                              stage=stage)
        if returncode < 0:
            raise TrialFailed(_crash_reason(stage, -returncode, stderr_text), stage=stage)
        if not out_path.exists():
            if "MemoryError" in stderr_text or "bad_alloc" in stderr_text:
                raise TrialFailed(out_of_memory_reason(stage), stage=stage)
            raise TrialFailed(f"{stage} worker exited with code {returncode} and no "
                              f"result{_tail(stderr_text)}", stage=stage)
        result = json.loads(out_path.read_text())
    if "error" in result:
        raise TrialFailed(result["error"]["message"], stage=result["error"]["stage"])
    return result


def remove_stale_worker_dirs() -> None:
    """Remove worker folders whose owner (the pid in the name) died without cleaning up."""
    remove_orphans(Path(tempfile.gettempdir()), _DIR_PREFIX)


def owned_prefix(prefix: str) -> str:
    """``prefix`` + this process's pid, for a folder :func:`remove_orphans` can sweep."""
    return f"{prefix}{os.getpid()}-"


def remove_orphans(parent: Path, prefix: str) -> None:
    """Remove ``parent/<prefix><pid>-*`` folders whose owning process no longer runs."""
    for path in parent.glob(f"{prefix}*-*"):
        owner = path.name.removeprefix(prefix).split("-", 1)[0]
        if owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (dead, not yet reaped by its parent) does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _wait_unreaped(pid: int, timeout_s: float | None) -> bool:
    """Wait for ``pid`` to exit without reaping it (its pid, hence its process group id,
    stays reserved until :func:`_kill_group` ran); False when ``timeout_s`` passed."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:  # reaped by someone else (SIGCHLD ignored, waitpid(-1))
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _crash_reason(stage: str, signum: int, stderr: str) -> str:
    name = signal.Signals(signum).name
    if "bad_alloc" in stderr or "MemoryError" in stderr:
        return out_of_memory_reason(stage, f"the worker died with {name}")
    if signum == signal.SIGKILL:
        return (f"{stage} worker was killed with SIGKILL (by the kernel's out-of-memory "
                f"killer or another process){_tail(stderr)}")
    return f"{stage} worker crashed with {name}{_tail(stderr)}"


def _tail(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return f": {lines[-1][-STDERR_TAIL:]}" if lines else ""

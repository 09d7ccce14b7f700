"""The conformance suite every backend passes, built-in or plugin (scikit-learn's
``check_estimator`` for backends): :func:`check_backend` runs each check below and raises
:class:`BackendCheckFailed` naming the first that fails.

* declarations: :func:`~tuner.backends.registry.declaration_problems` finds nothing
  (precisions known, option names unique, defaults and searched values in their domains,
  conditions on keys that exist) and the backend's defaults make a valid configuration;
* light import: its module imports none of the packages it declares (the engine library
  is imported inside ``build``/``load``), checked in a fresh interpreter;
* build and load: the digits workload's reference model builds (fp32, every option at its
  default) and the artifact, saved, loads in a fresh process (``python -m
  tuner.backends.checks``), which answers like ONNX Runtime on the original model;
* threads: that session, loaded with ``threads=1``, computes on one thread (per-thread
  CPU time from ``/proc``; a core count would hide an extra thread on a busy machine);
* unsupported precision: ``build`` of a precision the backend does not declare fails
  cleanly, with a :class:`~tuner.errors.PodiumError` (``TrialFailed``), not a crash.

>>> from tuner.backends.checks import check_backend
>>> check_backend("ort", workdir=tmp_path)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tuner.backends.base import Artifact, Backend, Precision
from tuner.backends.registry import backend_class, declaration_problems, get_backend
from tuner.errors import PodiumError
from tuner.hardware import load_profile
from tuner.trial.config import Configuration

# Reference tolerance: fp32 kernels differ in summation order, nothing more.
RTOL, ATOL = 1e-3, 1e-4
# Rows per call: enough work that an engine ignoring ``threads`` splits it.
BATCH = 32
BUSY_S = 0.6
# A thread "computes" when it took this share of the CPU time the session used (and at
# least two clock ticks): a timer or logging thread stays far below.
BUSY_SHARE = 0.1
CHILD_TIMEOUT_S = 300


class BackendCheckFailed(AssertionError):
    """A backend broke its contract; the message names the check and the reason."""


def check_backend(backend: str | type[Backend], *, workdir: Path) -> None:
    """Run every conformance check on ``backend`` (a registered name or a class), using
    ``workdir`` for its artifacts.

    Raises:
        BackendCheckFailed: the first check that fails, with why.
    """
    cls = backend_class(backend) if isinstance(backend, str) else backend
    check_declarations(cls)
    check_light_import(cls)
    artifact, config = check_builds_reference(cls, workdir / "reference")
    check_loads_in_fresh_process(cls, artifact, config)
    check_unsupported_precision(cls, workdir / "unsupported")


def _fail(check: str, cls: type[Backend], reason: str) -> BackendCheckFailed:
    return BackendCheckFailed(f"{check} [{getattr(cls, 'name', cls)}]: {reason}")


def check_declarations(cls: type[Backend]) -> None:
    """Declarations are consistent and the defaults make a valid configuration."""
    problems = declaration_problems(cls, name=cls.name)
    if not isinstance(cls.export_format, str) or not cls.export_format:
        problems.append("export_format is not a name")
    versions = cls.versions()
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in versions.items()):
        problems.append(f"versions() is not a dict of strings: {versions!r}")
    if not set(cls.precisions_for(())) <= set(cls.precisions):
        problems.append("precisions_for() offers a precision it does not declare")
    if problems:
        raise _fail("declarations", cls, "; ".join(problems))
    try:
        Configuration.parse({"backend": cls.name, "precision": cls.precisions[0]}).normalized()
    except PodiumError as exc:
        raise _fail("declarations", cls, f"its defaults do not validate: {exc}") from None


def check_light_import(cls: type[Backend]) -> None:
    """The backend's module, imported in a fresh interpreter, imports none of its declared
    packages (the engine library) at module level."""
    code = ("import importlib, json, sys\n"
            "from importlib.metadata import packages_distributions\n"
            f"packages = set({list(cls.packages)!r})\n"
            "modules = {m for m, dists in packages_distributions().items()\n"
            "           if packages & set(dists)}\n"
            f"importlib.import_module({cls.__module__!r})\n"
            "print(json.dumps(sorted(m for m in modules if m in sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=CHILD_TIMEOUT_S, check=False)
    if result.returncode != 0:
        raise _fail("light import", cls, f"its module does not import: "
                                         f"{result.stderr.strip().splitlines()[-1:]}")
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    if loaded:
        raise _fail("light import", cls, f"importing {cls.__module__} imports {loaded}; "
                                         "import the engine library inside build/load")


def _reference() -> tuple[Any, Path]:
    import workloads

    digits = workloads.get("digits")
    return digits, digits.model_path(digits.reference)


def _hardware(cls: type[Backend], config: Any) -> dict[str, Any]:
    profile = load_profile("local")
    return profile.as_dict() | cls.hardware_spec(profile, config)


def check_builds_reference(cls: type[Backend], out_dir: Path) -> tuple[Artifact, Any]:
    """Build the digits reference (fp32, defaults) in this process and save the artifact."""
    digits, model = _reference()
    config = Configuration.parse({"backend": cls.name, "variant": digits.reference,
                                  "precision": Precision.FP32.value,
                                  "batch": BATCH}).normalized()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        artifact = cls().build(model, config, out_dir, calibration=digits.calib_inputs,
                               hardware=_hardware(cls, config),
                               example=digits.example_feed(config.batch))
    except Exception as exc:
        raise _fail("build", cls, f"{type(exc).__name__}: {exc}") from None
    if not isinstance(artifact, Artifact) or artifact.path != out_dir:
        raise _fail("build", cls, f"returned {artifact!r}, not an Artifact in out_dir")
    missing = [f for f in artifact.files if not (out_dir / f).exists()]
    if missing:
        raise _fail("build", cls, f"artifact files missing: {missing}")
    artifact.save()
    return artifact, config


def check_loads_in_fresh_process(cls: type[Backend], artifact: Artifact, config: Any) -> None:
    """Load the saved artifact in a new interpreter with ``threads=1``; its outputs match
    ONNX Runtime's on the original model and it keeps to about one core."""
    import numpy as np
    import onnxruntime as ort

    digits, model = _reference()
    feed = digits.example_feed(config.batch)
    expected = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(
        None, feed)
    spec = artifact.path / "check.json"
    np.savez(artifact.path / "check.npz", **feed)
    spec.write_text(json.dumps({"backend": cls.name, "config": config.as_dict(),
                                "artifact": str(artifact.path), "threads": 1}))
    result = subprocess.run([sys.executable, "-m", "tuner.backends.checks", str(spec)],
                            capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
                            check=False, env=os.environ.copy())
    if result.returncode != 0:
        raise _fail("fresh-process load", cls,
                    " ".join(result.stderr.strip().splitlines()[-3:]) or "no output")
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    got = np.load(artifact.path / "outputs.npz", allow_pickle=False)
    outputs = [got[f"o{i}"] for i in range(len(got.files))]
    if len(outputs) != len(expected):
        raise _fail("fresh-process load", cls, f"{len(outputs)} outputs, expected "
                                               f"{len(expected)}")
    for ours, theirs in zip(outputs, expected, strict=True):
        if ours.shape != theirs.shape or not np.allclose(ours, theirs, rtol=RTOL, atol=ATOL):
            raise _fail("fresh-process load", cls, "outputs differ from onnxruntime's on the "
                                                   "same model")
    if answer["busy_threads"] > 1:
        raise _fail("threads", cls, f"a session loaded with threads=1 computed on "
                                    f"{answer['busy_threads']} threads")


def check_unsupported_precision(cls: type[Backend], out_dir: Path) -> None:
    """``build`` of a precision outside :attr:`~Backend.precisions` raises a PodiumError."""
    unsupported = [p for p in Precision if p.value not in cls.precisions]
    if not unsupported:
        return
    digits, model = _reference()
    # Validation refuses such a configuration, so it is built unvalidated: what a backend
    # sees if something upstream lets one through.
    config = Configuration.model_construct(backend=cls.name, precision=unsupported[0],
                                           variant=digits.reference, threads=1, batch=1,
                                           hardware="local")
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        cls().build(model, config, out_dir, calibration=digits.calib_inputs,
                    hardware=load_profile("local").as_dict(),
                    example=digits.example_feed(1))
    except PodiumError:
        return
    except Exception as exc:
        raise _fail("unsupported precision", cls, f"{unsupported[0].value} raised "
                                                  f"{type(exc).__name__}, not a PodiumError: "
                                                  f"{exc}") from None
    raise _fail("unsupported precision", cls, f"built {unsupported[0].value}, which it does "
                                              "not declare, without a word")


def _load_and_run(spec_path: Path) -> dict[str, Any]:
    """The fresh process: load, answer the example, then run for a while and report on how
    many threads the session computed."""
    import numpy as np

    spec = json.loads(spec_path.read_text())
    path = Path(spec["artifact"])
    config = Configuration.parse(spec["config"])
    feed = dict(np.load(path / "check.npz", allow_pickle=False))
    session = get_backend(spec["backend"]).load(Artifact.load(path), config,
                                                threads=spec["threads"])
    outputs = session.run(feed)
    np.savez(path / "outputs.npz", **{f"o{i}": np.asarray(o) for i, o in enumerate(outputs)})
    for _ in range(20):
        session.run(feed)
    before, start = _thread_ticks(), time.perf_counter()
    while time.perf_counter() - start < BUSY_S:
        session.run(feed)
    after = _thread_ticks()
    session.close()
    used = [after[t] - before.get(t, 0) for t in after]
    floor = max(2, BUSY_SHARE * sum(used))
    return {"busy_threads": sum(1 for ticks in used if ticks >= floor)}


def _thread_ticks() -> dict[str, int]:
    """CPU clock ticks (user + system) of each thread of this process, by thread id."""
    ticks = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        ticks[tid] = int(fields[11]) + int(fields[12])
    return ticks


if __name__ == "__main__":
    print(json.dumps(_load_and_run(Path(sys.argv[1]))))

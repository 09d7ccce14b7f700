"""The contract every backend implements: build an artifact once, run it many times.

A backend has two halves that run in different processes (MEASUREMENT.md rule 2):

* :meth:`Backend.build` turns an ONNX file plus a :class:`~tuner.trial.config.Configuration`
  into an :class:`Artifact` directory. It runs in a build worker process, may be slow,
  and must write only inside ``out_dir`` (the caller moves the directory into the cache
  atomically, so a failed build leaves nothing behind).
* :meth:`Backend.load` opens an artifact for inference in a fresh measuring process and
  returns a :class:`Session` whose :meth:`Session.run` is the timed call. ``threads`` is
  the number of cores the measuring process owns; the session must not use more.

A session's inputs are what the model takes (:meth:`workloads.layout.Layout.feed`: each
input's batch on its own axis, constants included) and its outputs are what the model
returns. A backend that compiles for static shapes builds for the shapes of ``example``,
one call's inputs of ``config.batch`` real rows, and then receives exactly those shapes.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from tuner.trial.config import Configuration

ARTIFACT_MANIFEST = "artifact.json"


@dataclass
class Artifact:
    """A built, runnable form of one model variant under one configuration.

    ``files`` are relative to ``path``; ``model_size_bytes`` is what is shipped to serve
    the model (the transformed ONNX file, or the compiled library). ``details`` holds
    backend facts a reproducer needs (e.g. which nodes were quantized).
    """

    path: Path
    backend: str
    files: list[str]
    model_size_bytes: int
    build_s: float
    details: dict[str, Any] = field(default_factory=dict)

    def save(self) -> None:
        record = asdict(self)
        record["path"] = None
        (self.path / ARTIFACT_MANIFEST).write_text(json.dumps(record, indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> Artifact:
        record = json.loads((path / ARTIFACT_MANIFEST).read_text())
        record["path"] = path
        return cls(**record)


class Session(ABC):
    """A loaded artifact; ``run`` is the call that gets timed."""

    input_names: list[str]

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run one inference call on a batch and return the outputs as numpy arrays."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release the session's resources (thread pools, VM)."""


class Backend(ABC):
    """One inference engine. Implementations must be importable without side effects."""

    name: str

    @abstractmethod
    def build(self, model_path: Path, config: Configuration, out_dir: Path, *,
              calibration: dict[str, np.ndarray] | None, hardware: dict[str, Any],
              example: dict[str, np.ndarray] | None = None) -> Artifact:
        """Build ``model_path`` under ``config`` into ``out_dir`` and return the artifact.

        ``calibration`` holds the calibration split (input name → array) for static int8;
        ``hardware`` is the target profile as a dict (``tvm_target``, ``cores``, …);
        ``example`` is one call's inputs (``config.batch`` rows), whose shapes resolve the
        model's dynamic dims for a backend that needs static ones.
        """

    @abstractmethod
    def load(self, artifact: Artifact, config: Configuration, *, threads: int) -> Session:
        """Open ``artifact`` for inference using at most ``threads`` cores."""

"""The contract every backend implements: what it declares, and how it builds and runs.

A backend is one :class:`Backend` subclass in one module, registered by name
(:mod:`tuner.backends.registry`: one line of ``BUILTIN``, or a ``podium.backends`` entry
point). It has two halves.

**Declarations** — class attributes and classmethods, answered from the class (nothing is
instantiated) in whichever process asks: the CLI, a search driver, a worker. They must be
pure and cheap, and the module must import without the engine library (TVM, OpenVINO, …
are imported inside :meth:`Backend.build` / :meth:`Backend.load` only):

* :attr:`~Backend.name`, :attr:`~Backend.export_format` (what the artifact is);
* :attr:`~Backend.precisions` (a subset of :class:`Precision`) and
  :meth:`~Backend.precisions_for` (those that run natively on an ISA, e.g. bf16 only with
  ``avx512_bf16``/``amx_bf16``): the search space samples these, a trial on hardware that
  lacks one is refused;
* :attr:`~Backend.options`: the backend's own configuration keys, one :class:`Option`
  each (domain, default, what the default search space samples, when it applies, whether
  it changes the artifact). The :class:`~tuner.trial.config.Configuration` validates and
  normalizes with them, :mod:`tuner.search.space` samples them, ``podium backends list``
  prints them. Names are unique across backends and never a core key (:data:`CORE_KEYS`);
* :attr:`~Backend.build_keys` (core keys beyond variant/backend/precision that change the
  artifact), :attr:`~Backend.precision_in_onnx` (whether :mod:`tuner.transforms` converts
  the graph to the precision first), :meth:`~Backend.check` (problems between keys that
  conditions cannot say), :meth:`~Backend.versions` (packages its results depend on:
  recorded, and in the artifact cache key), :meth:`~Backend.hardware_spec` and
  :meth:`~Backend.check_target` (what a build needs to know about the target; refusing one
  it cannot serve) and :meth:`~Backend.cache_key` (anything else an artifact depends on).

**Build and run** — two methods that run in different worker processes, each called once
per process (MEASUREMENT.md rule 2):

* :meth:`Backend.build` turns an ONNX file (already cleaned up and converted to the
  configuration's precision by :mod:`tuner.transforms`) plus a configuration into an
  :class:`Artifact` directory. It may be slow, and must write only inside ``out_dir`` (the
  caller moves the directory into the cache atomically, so a failed build leaves nothing
  behind). A failure is :class:`~tuner.errors.TrialFailed` with ``stage="build"``;
  :meth:`Backend.require_precision` is its first line.
* :meth:`Backend.load` opens an artifact for inference in a fresh measuring process and
  returns a :class:`Session` whose :meth:`Session.run` is the timed call, made from one
  thread at a time. ``threads`` is the number of cores the measuring process owns; the
  session must not use more. A backend that declares :attr:`~Backend.runtime_module` (a
  standalone module of :mod:`tuner.backends.standalone`) and :meth:`~Backend.runtime` gets
  ``load`` for free, and ``podium export`` can ship its artifacts.

A session's inputs are what the model takes (:meth:`workloads.layout.Layout.feed`: each
input's batch on its own axis, constants included) and its outputs are what the model
returns. A backend that compiles for static shapes builds for the shapes of ``example``,
one call's inputs of ``config.batch`` real rows, and then receives exactly those shapes.

The configuration a backend receives is a :class:`~tuner.trial.config.Configuration`
(typed ``Any`` here: this module sits below the records): core keys and the backend's own
options are attributes, an option that is unset or does not apply reads ``None``.
``tuner.backends.checks.check_backend`` is the conformance suite every backend passes.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from tuner.backends.options import CORE_KEYS, Condition, Option, Precision, plain
from tuner.errors import TrialFailed
from workloads.onnx_files import file_sha256

if TYPE_CHECKING:
    import numpy as np

ARTIFACT_MANIFEST = "artifact.json"
__all__ = ["ARTIFACT_MANIFEST", "CORE_KEYS", "Artifact", "Backend", "Condition", "Option",
           "Precision", "Session", "plain"]

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
    # sha256 of each of ``files``, taken when the build saved it: an exported bundle and a
    # rebuilt artifact are checked against these (and against the trial record's copy).
    checksums: dict[str, str] = field(default_factory=dict)

    def save(self) -> None:
        self.checksums = {name: file_sha256(self.path / name) for name in self.files}
        record = asdict(self)
        record["path"] = None
        (self.path / ARTIFACT_MANIFEST).write_text(json.dumps(record, indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> Artifact:
        record = json.loads((path / ARTIFACT_MANIFEST).read_text())
        record["path"] = path
        # A manifest written by a newer Podium sharing this cache may hold more fields.
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in known})


class Session(ABC):
    """A loaded artifact; ``run`` is the call that gets timed."""

    input_names: list[str]

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run one inference call on a batch and return the outputs as numpy arrays."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release the session's resources (thread pools, VM)."""


class Backend(ABC):
    """One inference engine: its declarations (class level) and its build and load.

    Every classmethod here is a declaration with a default a backend overrides only where
    it has something to say; ``build`` is the one it must write, and ``load`` unless it
    declares a standalone :attr:`runtime_module`.
    """

    name: ClassVar[str]
    export_format: ClassVar[str] = "onnx"
    precisions: ClassVar[tuple[str, ...]] = (Precision.FP32.value,)
    options: ClassVar[tuple[Option, ...]] = ()
    # Core keys (beyond variant, backend, precision) that change the artifact: a backend
    # compiling for static shapes and one target adds "batch" and "hardware".
    build_keys: ClassVar[tuple[str, ...]] = ()
    # Distributions whose versions :meth:`versions` reports.
    packages: ClassVar[tuple[str, ...]] = ()
    # True: build receives the graph converted to the precision by tuner.transforms (fp16,
    # int8 via ONNX Runtime's quantizer). False: it receives the fp32 graph (cleaned up)
    # and applies the precision itself (a compile hint, its own quantizer).
    precision_in_onnx: ClassVar[bool] = True
    # True: build also receives ``held_out``, rows calibration never saw (a
    # :class:`tuner.transforms.sensitivity.Probe`), to rank layers or judge its own quantizer.
    uses_held_out: ClassVar[bool] = False
    # False: the default search space leaves this backend out, and ``left_out`` says why;
    # a space that names it (``backend``, its precision or one of its options) brings it in.
    in_default_space: ClassVar[bool] = True
    left_out: ClassVar[str] = ""
    # The module whose ``open_session(folder, runtime)`` opens this backend's artifacts with
    # only numpy and the engine (:mod:`tuner.backends.standalone`): the default
    # :meth:`load` calls it, and ``podium export`` ships it in the bundle. None: the backend
    # writes its own :meth:`load`, and its winners cannot be exported.
    runtime_module: ClassVar[str | None] = None

    @classmethod
    def option(cls, key: str) -> Option | None:
        """The declared option named ``key``; None if this backend has none."""
        return next((o for o in cls.options if o.name == key), None)

    @classmethod
    def precisions_for(cls, isa: Iterable[str]) -> tuple[str, ...]:
        """The precisions this backend runs natively on a CPU with the ``isa`` flags
        (``/proc/cpuinfo`` names); default: all of :attr:`precisions`."""
        return tuple(cls.precisions)

    @classmethod
    def check(cls, values: Mapping[str, Any]) -> list[str]:
        """Problems between keys of a configuration (its values, defaults filled in) that
        the options' conditions cannot say; one line each. Default: none."""
        return []

    @classmethod
    def versions(cls) -> dict[str, str]:
        """Installed versions of :attr:`packages` (``"missing"`` where absent)."""
        found = {}
        for package in cls.packages:
            try:
                found[package] = metadata.version(package)
            except metadata.PackageNotFoundError:
                found[package] = "missing"
        return found

    @classmethod
    def hardware_spec(cls, profile: Any, config: Any) -> dict[str, Any]:
        """Entries added to the ``hardware`` dict :meth:`build` receives (the target
        profile's ``as_dict()``), e.g. a compiler target resolved for ``config``.

        Raises:
            HardwareError: the profile cannot serve ``config``.
        """
        return {}

    @classmethod
    def check_target(cls, profile: Any, config: Any) -> None:
        """Refuse, before anything is built, a configuration this target — a
        :class:`~tuner.hardware.HardwareProfile`, simulated or this machine — cannot run
        (raise :class:`~tuner.errors.HardwareError` with the reason and the way out).
        Whether the precision runs on the ISA is checked for every backend already."""
        return None

    @classmethod
    def cache_key(cls, config: Any, profile: Any, workload: Any) -> dict[str, Any]:
        """What else the artifact depends on, mixed into its cache key beside the model,
        the build keys and :meth:`versions` (e.g. a compiler target, input shapes)."""
        return {}

    @classmethod
    def precision_problem(cls, precision: str, isa: Iterable[str] | None = None) -> str | None:
        """Why this backend cannot run ``precision`` (on ``isa``, when given); None if it can."""
        precision = str(plain(precision))
        if precision not in cls.precisions:
            return f"precision {precision} is not one of {cls.name}'s: {', '.join(cls.precisions)}"
        if isa is not None:
            native = cls.precisions_for(isa)
            if precision not in native:
                return (f"precision {precision} is not supported by the {cls.name} backend on "
                        f"this hardware (its ISA runs {', '.join(native) or 'none'} there)")
        return None

    @classmethod
    def require_precision(cls, config: Any, hardware: Mapping[str, Any]) -> None:
        """The first line of every :meth:`build`: raise TrialFailed (stage ``build``) for a
        precision this backend does not run on ``hardware["isa"]`` (if the dict has one)."""
        problem = cls.precision_problem(config.precision, hardware.get("isa"))
        if problem:
            raise TrialFailed(problem, stage="build")

    @abstractmethod
    def build(self, model_path: Path, config: Any, out_dir: Path, *,
              calibration: dict[str, np.ndarray] | None, hardware: dict[str, Any],
              example: dict[str, np.ndarray] | None = None,
              feed: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
              ) -> Artifact:
        """Build ``model_path`` under ``config`` into ``out_dir`` and return the artifact.

        ``calibration`` holds the calibration split (input name → array) for static int8;
        ``hardware`` is the target profile as a dict (``isa``, ``cores``, …) plus
        :meth:`hardware_spec`'s entries; ``example`` is one call's inputs (``config.batch``
        rows), whose shapes resolve the model's dynamic dims for a backend that needs
        static ones; ``feed`` turns canonical rows (``calibration``'s, batch on axis 0) into
        model inputs (:meth:`workloads.layout.Layout.feed`: batch axes, constants), for a
        backend that runs calibration data through the model itself. A backend that sets
        :attr:`uses_held_out` takes a ``held_out`` keyword besides.
        """

    @classmethod
    def runtime(cls, artifact: Artifact, config: Any, *, threads: int) -> dict[str, Any]:
        """Every option :attr:`runtime_module` opens ``artifact`` with under ``config`` on
        ``threads`` cores, as JSON: the file names in the artifact folder, the session or
        compile options, the thread counts. An exported bundle's ``inference.json`` carries
        exactly this, so the deployed model opens the way it was timed."""
        raise NotImplementedError(f"backend {cls.name!r} declares no standalone runtime")

    def load(self, artifact: Artifact, config: Any, *, threads: int) -> Session:
        """Open ``artifact`` for inference using at most ``threads`` cores.

        Default: :attr:`runtime_module`'s ``open_session`` with :meth:`runtime`'s options.
        A backend without a standalone runtime overrides this."""
        if self.runtime_module is None:
            raise NotImplementedError(f"backend {self.name!r} must define load()")
        from importlib import import_module

        module = import_module(self.runtime_module)
        return module.open_session(artifact.path, self.runtime(artifact, config,
                                                                threads=threads))

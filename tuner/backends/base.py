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
  session must not use more.

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
from dataclasses import KW_ONLY, asdict, dataclass, field
from enum import Enum, StrEnum
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from tuner.errors import TrialFailed

if TYPE_CHECKING:
    import numpy as np

ARTIFACT_MANIFEST = "artifact.json"
# Keys every configuration has, whatever its backend; an option may not take one's name.
CORE_KEYS = ("variant", "backend", "precision", "threads", "batch", "hardware")


class Precision(StrEnum):
    """The numeric precisions Podium knows; a backend declares which of them it runs."""

    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8_DYNAMIC = "int8-dynamic"
    INT8_STATIC = "int8-static"

    @property
    def is_int8(self) -> bool:
        return self in (Precision.INT8_DYNAMIC, Precision.INT8_STATIC)


def plain(value: Any) -> Any:
    """``value`` as configurations store it in JSON (an enum member as its value)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Condition:
    """When an option (or one value of it) applies, as data: the configuration's ``key``
    (a core key or an option declared before) is one of ``one_of``, or at least
    ``at_least``. ``label`` names it in messages ("int8 precisions").

    Example:
        >>> Condition("threads", at_least=2).holds({"threads": 1})
        False
    """

    key: str
    _: KW_ONLY
    one_of: tuple[Any, ...] = ()
    at_least: float | None = None
    label: str = ""

    def holds(self, values: Mapping[str, Any]) -> bool:
        value = values.get(self.key)
        if value is None:
            return False
        if self.at_least is not None:
            return (isinstance(value, int | float) and not isinstance(value, bool)
                    and value >= self.at_least)
        return value in self.one_of or plain(value) in map(plain, self.one_of)

    def __str__(self) -> str:
        if self.label:
            return self.label
        if self.at_least is not None:
            return f"{self.key} >= {self.at_least:g}"
        return f"{self.key}={'/'.join(str(plain(v)) for v in self.one_of)}"


@dataclass(frozen=True)
class Option:
    """One configuration key a backend declares.

    Args:
        name: the key (``--set name=value``), unique across backends.
        default: the value :meth:`Configuration.normalized` fills in where it applies.
        choices: the allowed values; or, for a number, ``low``/``high`` (inclusive); or,
            for a free value, ``kind`` (``str``, ``float``, ``tuple``: a CLI string is
            split on commas).
        searched: what the default search space samples (default: just ``default``).
        applies: conditions that must all hold for the key to apply (else it stays unset,
            and setting it is refused with the condition as the reason).
        needs: value → a condition that value needs (``{"parallel": threads >= 2}``).
        build: the value changes the built artifact (it is in the cache key); False for
            load-time settings (execution mode, thread pools).
        same_speed: where this holds, every value of the option runs the same operators
            at the same speed (a calibration method: only scale constants differ), so a
            timing of one value stands for all (:func:`~tuner.trial.config.speed_digest`).
        help: one line for ``podium backends list`` and the README.

    Example:
        >>> Option("tvm_opt_level", default=3, low=0, high=3, help="Relax pass level")
        ...  # doctest: +SKIP
    """

    name: str
    _: KW_ONLY
    default: Any
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    kind: type | None = None
    searched: tuple[Any, ...] = ()
    applies: tuple[Condition, ...] | Condition = ()
    needs: Mapping[Any, Condition] = field(default_factory=dict, hash=False)
    build: bool = True
    same_speed: Condition | None = None
    help: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.applies, Condition):
            object.__setattr__(self, "applies", (self.applies,))
        if self.kind is None and not self.choices:
            numbers = [v for v in (self.low, self.high, self.default) if v is not None]
            kind = (float if any(isinstance(v, float) for v in numbers) else int
                    ) if self.low is not None or self.high is not None else type(self.default)
            object.__setattr__(self, "kind", kind)
        if not self.searched:
            object.__setattr__(self, "searched", (self.default,))

    def coerce(self, value: Any) -> Any:
        """``value`` (a CLI string too: ``"true"``, ``"3"``) as this option stores it.

        Raises:
            ValueError: outside the domain, with a one-line reason.
        """
        if self.choices:
            for choice in self.choices:
                if _same(choice, value):
                    return choice
            raise ValueError(f"{plain(value)!r} is not one of {self.domain()}")
        parsed = _parse(self.kind, value)
        if ((self.low is not None and parsed < self.low)
                or (self.high is not None and parsed > self.high)):
            raise ValueError(f"{parsed!r} is outside {self.domain()}")
        return parsed

    def domain(self) -> str:
        """The allowed values, for messages and listings."""
        if self.choices:
            return ", ".join(str(plain(c)).lower() if isinstance(c, bool) else str(plain(c))
                             for c in self.choices)
        if self.low is not None or self.high is not None:
            low = "" if self.low is None else f"{self.low:g}"
            high = "" if self.high is None else f"{self.high:g}"
            return f"{low}–{high}" if low and high else (f"≥ {low}" if low else f"≤ {high}")
        kind = getattr(self.kind, "__name__", "value")
        return "comma-separated names" if self.kind is tuple else f"any {kind}"

    def unmet(self, values: Mapping[str, Any]) -> Condition | None:
        """The first condition of :attr:`applies` that ``values`` miss; None: it applies."""
        return next((c for c in self.applies if not c.holds(values)), None)

    def value_unmet(self, value: Any, values: Mapping[str, Any]) -> Condition | None:
        """The condition ``value`` needs that ``values`` miss (None: the value is fine)."""
        for needed, condition in self.needs.items():
            if plain(needed) == plain(value) and not condition.holds(values):
                return condition
        return None


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _parse(kind: type | None, value: Any) -> Any:
    """``value`` as ``kind``, parsing strings; ValueError with a one-line reason."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(f"{value!r} is not true or false")
    if kind is int or kind is float:
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a number")
        try:
            number = float(value) if isinstance(value, str) else value
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
        if not isinstance(number, int | float):
            raise ValueError(f"{value!r} is not a number")
        if kind is int:
            if isinstance(number, float) and not number.is_integer():
                raise ValueError(f"{value!r} is not an integer")
            return int(number)
        return float(number)
    if kind is tuple:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        if isinstance(value, list | tuple):
            return tuple(value)
        raise ValueError(f"{value!r} is not a list")
    if kind is not None and not isinstance(value, kind):
        raise ValueError(f"{value!r} is not a {kind.__name__}")
    return value


def _same(choice: Any, value: Any) -> bool:
    if isinstance(value, str) and not isinstance(choice, str):
        try:
            value = _parse(type(choice), value)
        except ValueError:
            return False
    if isinstance(choice, bool) != isinstance(value, bool):
        return False
    return bool(choice == value)


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
    """One inference engine: its declarations (class level) and its build and load.

    Every classmethod here is a declaration with a default a backend overrides only where
    it has something to say; ``build`` and ``load`` are the two it must write.
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
        backend that runs calibration data through the model itself.
        """

    @abstractmethod
    def load(self, artifact: Artifact, config: Any, *, threads: int) -> Session:
        """Open ``artifact`` for inference using at most ``threads`` cores."""

"""The search space: one conditional tree over every knob of a Configuration.

The tree is generic over the registered backends (:mod:`tuner.backends.registry`): after
the core decisions (hardware, variant, threads, batch, backend) it takes the chosen
backend's precision and then each of its :class:`~tuner.backends.base.Option`\\ s, in
declaration order, where the option's conditions hold. It is written once, in
:meth:`Space.build`, against a ``choose(name, choices)`` callback, and everything else is
derived from it:

* Optuna sampling — ``choose`` is ``trial.suggest_categorical`` (:meth:`Space.suggest`);
* the full grid — a depth-first walk over every choice (:meth:`Space.configurations`);
* Optuna params of a known configuration, for enqueueing (:meth:`Space.params_for`).

Each backend's precision is its own parameter (``ort_precision``, ``tvm_precision``: the
backend's name and ``_precision``) so that every Optuna distribution is fixed per name; an
option's parameter is the option's name. A dimension with one allowed value is not
suggested at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError

from tuner.backends.base import Option, Precision, plain
from tuner.backends.registry import backend_class, backend_names
from tuner.errors import ConfigError
from tuner.hardware import load_profile
from tuner.trial.config import Configuration

Choose = Callable[[str, list[Any]], Any]
PRECISION_PARAM = "{backend}_precision"
# Override key → the Space field it restricts; backends' options and precisions besides.
_CORE = {"variant": "variants", "hardware": "hardware", "backend": "backends",
         "threads": "threads", "batch": "batch"}


@dataclass(frozen=True)
class Space:
    """Allowed values of every dimension; build one with :func:`default_space`.

    ``precisions`` (backend → its precisions) and ``options`` (option → values) are filled
    from the backends' declarations where not given: every declared precision, each
    option's ``searched`` values. Values are stored as JSON values (``"all"``, not an enum).
    """

    variants: list[str]
    hardware: list[str] = field(default_factory=lambda: ["local"])
    backends: list[str] = field(default_factory=backend_names)
    precisions: dict[str, list[str]] = field(default_factory=dict)
    options: dict[str, list[Any]] = field(default_factory=dict)
    threads: list[int] = field(default_factory=lambda: [1])
    batch: list[int] = field(default_factory=lambda: [1])

    def __post_init__(self) -> None:
        # Every registered backend's, searched or not: a restriction may bring one in.
        declared = {name: backend_class(name)
                    for name in dict.fromkeys([*self.backends, *backend_names()])}
        precisions = {name: list(self.precisions.get(name, backend.precisions))
                      for name, backend in declared.items()}
        options = {o.name: list(self.options.get(o.name, [plain(v) for v in o.searched]))
                   for backend in declared.values() for o in backend.options}
        object.__setattr__(self, "precisions", precisions)
        object.__setattr__(self, "options", options)

    def build(self, choose: Choose) -> Configuration:
        """Walk the conditional tree, asking ``choose`` at every open decision."""

        def pick(name: str, choices: list[Any]) -> Any:
            if not choices:
                raise ConfigError(f"the search space leaves no value for {name}")
            return choices[0] if len(choices) == 1 else choose(name, list(choices))

        values: dict[str, Any] = {
            "hardware": pick("hardware", self.hardware),
            "variant": pick("variant", self.variants),
            "threads": pick("threads", self.threads),
            "batch": pick("batch", self.batch),
        }
        backend = pick("backend", self.backends)
        values["backend"] = backend
        values["precision"] = pick(PRECISION_PARAM.format(backend=backend),
                                   self.precisions[backend])
        for option in backend_class(backend).options:
            if option.unmet(values) is None:
                values[option.name] = pick(option.name, _allowed(option, self.options[option.name],
                                                                 values))
        return Configuration.parse(values).normalized()

    def suggest(self, trial: Any) -> Configuration:
        """Sample a configuration with an Optuna trial."""
        return self.build(trial.suggest_categorical)

    def configurations(self) -> list[Configuration]:
        """Every configuration of the space (the grid), each exactly once."""
        found: list[Configuration] = []
        stack: list[list[int]] = [[]]
        while stack:
            prefix = stack.pop()
            widths: list[int] = []

            def choose(name: str, choices: list[Any], prefix=prefix, widths=widths) -> Any:
                depth = len(widths)
                widths.append(len(choices))
                return choices[prefix[depth] if depth < len(prefix) else 0]

            found.append(self.build(choose))
            full = prefix + [0] * (len(widths) - len(prefix))
            for depth in range(len(prefix), len(widths)):
                stack.extend([*full[:depth], i] for i in range(1, widths[depth]))
        return found

    def params_for(self, config: Configuration) -> dict[str, Any] | None:
        """Optuna params that make :meth:`build` return ``config``; None if outside."""
        config = config.normalized()
        wanted = config.as_dict() | {PRECISION_PARAM.format(backend=config.backend):
                                     config.precision.value}
        params: dict[str, Any] = {}

        def choose(name: str, choices: list[Any]) -> Any:
            value = wanted.get(name)
            if value not in choices:
                raise LookupError(name)
            params[name] = value
            return value

        try:
            built = self.build(choose)
        except (LookupError, ConfigError):
            return None
        return params if built == config else None

    def size(self) -> int:
        return len(self.configurations())

    def restrict(self, overrides: dict[str, Any] | None) -> Space:
        """Apply a ``space=`` override: dimension → one value or a list of allowed values.

        Dimensions: the core keys (``variant``, ``backend``, ``threads``, ``batch``,
        ``hardware``), ``precision`` (narrows every backend's precisions; a backend left
        without one is dropped), ``<backend>_precision`` (one backend's) and every option a
        backend declares. A space left without any configuration is an error.
        """
        if not overrides:
            return self
        valid = dimensions()
        changes: dict[str, Any] = {}
        precisions = dict(self.precisions)
        options = dict(self.options)
        for key, value in overrides.items():
            if key not in valid:
                raise ConfigError(f"unknown search-space dimension {key!r} "
                                  f"(valid: {', '.join(valid)})")
            values = list(value) if isinstance(value, list | tuple | set) else [value]
            allowed = [_coerce(key, v) for v in values]
            if key == "precision":
                precisions = {b: [p for p in ps if p in allowed] for b, ps in precisions.items()}
            elif key in _precision_params():
                backend = _precision_params()[key]
                precisions[backend] = [p for p in precisions.get(
                    backend, backend_class(backend).precisions) if p in allowed]
            elif key in _CORE:
                changes[_CORE[key]] = allowed
            else:
                options[key] = allowed
        if "backends" not in changes:  # naming a backend's precision or option asks for it
            named = {_precision_params().get(key) or _owner(key) for key in overrides}
            changes["backends"] = self.backends + sorted(
                b for b in named - {None} if b not in self.backends)
        restricted = replace(self, **changes, precisions=precisions, options=options)
        backends = [b for b in restricted.backends if restricted.precisions[b]]
        if not backends:
            raise ConfigError(f"the space override {overrides} leaves no valid configuration")
        return replace(restricted, backends=backends)


def _owner(key: str) -> str | None:
    """The backend that declares option ``key``; None for a core key or ``precision``."""
    return next((name for name in backend_names() if backend_class(name).option(key)), None)


def _allowed(option: Option, values: list[Any], chosen: dict[str, Any]) -> list[Any]:
    """The space's values of ``option`` that the configuration so far allows; where none is,
    the default if it is allowed (``ort_execution_mode=parallel`` asked for, 1 thread)."""
    allowed = [v for v in values if option.value_unmet(v, chosen) is None]
    if not allowed and option.value_unmet(option.default, chosen) is None:
        allowed = [plain(option.default)]
    return allowed


def _precision_params() -> dict[str, str]:
    return {PRECISION_PARAM.format(backend=name): name for name in backend_names()}


def dimensions() -> list[str]:
    """Every key a ``space=`` override may name."""
    return [*_CORE, "precision", *_precision_params(),
            *(o.name for name in backend_names() for o in backend_class(name).options)]


def _coerce(key: str, value: Any) -> Any:
    """Validate one override value against its dimension: a registered backend, a known
    precision (one the backend declares, for ``<backend>_precision``), an option's domain,
    a core field's type and bounds."""
    if value is None:
        raise ConfigError(f"search-space dimension {key!r} needs a value, not null")
    if key == "backend":
        return backend_class(str(value)).name
    if key == "precision" or key in _precision_params():
        known = (backend_class(_precision_params()[key]).precisions if key != "precision"
                 else [p.value for p in Precision])
        if value not in known:
            raise ConfigError(f"invalid {key} {value!r} (valid: {', '.join(known)})")
        return value
    option = next((o for name in backend_names() for o in backend_class(name).options
                   if o.name == key), None)
    try:
        if option is not None:
            return plain(option.coerce(value))
        info = Configuration.model_fields[key]
        annotation = (Annotated[info.annotation, *info.metadata] if info.metadata
                      else info.annotation)
        return TypeAdapter(annotation).validate_python(value)
    except (ValueError, ValidationError) as exc:
        message = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise ConfigError(f"invalid value {value!r} for search-space dimension {key!r}: "
                          f"{message}") from None


def default_space(variants: Iterable[str], *, hardware: list[str], cores: int,
                  fixed_batch: int | None = None, quality_floor: float | None = None,
                  batched: bool = True) -> Space:
    """The default space for a workload: every variant, every backend that is
    ``in_default_space`` with the precisions it runs natively on every hardware target
    searched, 1..cores threads, batches 1, 8 and 32 — only 1 where nothing ``batched``
    depends on the batch (a per-call latency objective), and only the one batch a model
    exported with a fixed batch takes. ``quality_floor`` (the ``q`` of a
    ``quality_ratio >= q`` constraint) fixes the options that follow it."""
    isas = [load_profile(name).isa for name in hardware]
    precisions = {name: [p for p in backend_class(name).precisions
                         if all(p in backend_class(name).precisions_for(isa) for isa in isas)]
                  for name in backend_names()}
    options = {}
    if quality_floor is not None:
        options = {o.name: [round(max(0.0, 1.0 - quality_floor), 6)] for name in backend_names()
                   for o in backend_class(name).options if o.follows_quality_floor}
    return Space(variants=list(variants), hardware=list(hardware),
                 backends=[name for name, found in precisions.items()
                           if found and backend_class(name).in_default_space],
                 precisions=precisions, options=options, threads=list(range(1, cores + 1)),
                 batch=[fixed_batch] if fixed_batch else [1, 8, 32] if batched else [1])


def left_out(space: Space) -> dict[str, str]:
    """The registered backends ``space`` does not search, each with the reason."""
    reasons = {}
    for name in backend_names():
        if name in space.backends:
            continue
        backend = backend_class(name)
        if not space.precisions.get(name):
            reasons[name] = "none of its precisions runs natively on the searched hardware"
        else:
            reasons[name] = backend.left_out or "the space override leaves it out"
    return reasons


def describe(space: Space) -> list[tuple[str, str]]:
    """``space`` as (dimension, values) rows, the backends' precisions and the options
    searched with more than one value included, for ``optimize --dry-run``."""
    rows = [("hardware", ", ".join(space.hardware)), ("variant", ", ".join(space.variants)),
            ("threads", ", ".join(map(str, space.threads))),
            ("batch", ", ".join(map(str, space.batch))), ("backend", ", ".join(space.backends))]
    for name in space.backends:
        rows.append((f"{name} precision", ", ".join(space.precisions[name])))
        for option in backend_class(name).options:
            values = space.options.get(option.name, [])
            by_precision = [c for c in option.applies if c.key == "precision"]
            if not any(all(c.holds({"precision": p}) for c in by_precision)
                       for p in space.precisions[name]):
                continue  # only for precisions this space does not search
            if len(values) > 1 or values != [plain(option.default)]:
                rows.append((f"{name} {option.name}", ", ".join(
                    str(v).lower() if isinstance(v, bool) else str(v) for v in values)))
    rows += [(f"left out: {name}", why) for name, why in left_out(space).items()]
    return [*rows, ("configurations", str(space.size()))]


def quality_floor(constraints: Iterable[Any]) -> float | None:
    """The highest ``q`` of the ``quality_ratio >= q`` (or ``>``) constraints; None if none."""
    floors = [c.bound for c in constraints if c.metric == "quality_ratio" and c.op in (">=", ">")]
    return max(floors) if floors else None

"""Backends by name: the built-in table, plus third-party ones from an entry-point group.

A built-in backend is one line of :data:`BUILTIN` (name → ``module:Class``). A package
adds one without touching Podium by declaring an entry point in the ``podium.backends``
group (``tiny = tiny_backend:TinyBackend``; pyproject: ``[project.entry-points.
"podium.backends"]``). Modules are imported on first use, all together, so that the
declarations can be checked against each other (option names unique across backends, see
:func:`declaration_problems`); a plugin that does not import or declares something wrong
is reported — a :class:`BackendPluginWarning`, and listed with its reason by
:func:`registrations` (``podium backends list``) — never fatal. Names refused or unknown
are :class:`~tuner.errors.ConfigError` listing the valid ones.

>>> from tuner.backends.registry import backend_class, backend_names
>>> backend_names()  # doctest: +SKIP
['ort', 'tvm']
>>> [o.name for o in backend_class("tvm").options]  # doctest: +SKIP
['tvm_opt_level', 'tvm_features', 'tvm_tuning_trials']
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import metadata

from tuner.backends.base import CORE_KEYS, Backend, Option, Precision, plain
from tuner.errors import ConfigError, one_line

BUILTIN = {
    "ort": "tuner.backends.onnxruntime:OrtBackend",
    "tvm": "tuner.backends.tvm:TvmBackend",
    "openvino": "tuner.backends.openvino:OpenVinoBackend",
}
# What a configuration that names no backend runs on (the baseline every search measures).
DEFAULT_BACKEND = "ort"
ENTRY_POINT_GROUP = "podium.backends"
BUILTIN_SOURCE = "built-in"

_UNKNOWN = "unknown backend {name!r} (valid: {valid})"
_BROKEN = "backend {name!r} ({source}) cannot be used: {error}"


class BackendPluginWarning(UserWarning):
    """A registered backend could not be loaded; Podium goes on without it."""


@dataclass(frozen=True)
class Registration:
    """One registered backend: where it came from, and why it cannot be used (if so)."""

    name: str
    target: str  # "module:Class"
    source: str  # "built-in", or "<distribution> <version>" of the plugin
    backend: type[Backend] | None = None
    error: str | None = None


def backend_names() -> list[str]:
    """Names of the usable backends: built-ins in table order, then plugins by name."""
    return [r.name for r in _registry().values() if r.backend is not None]


def backend_class(name: str) -> type[Backend]:
    """The class of backend ``name``: its declarations, nothing instantiated.

    Raises:
        ConfigError: unknown name (listing the valid ones) or a plugin that cannot load.
    """
    found = _registry().get(str(name))
    if found is None:
        raise ConfigError(_UNKNOWN.format(name=name, valid=", ".join(backend_names())))
    if found.backend is None:
        raise ConfigError(_BROKEN.format(name=name, source=found.source, error=found.error))
    return found.backend


def get_backend(name: str) -> Backend:
    """An instance of backend ``name`` (what a worker builds and loads with)."""
    return backend_class(name)()


def registrations() -> list[Registration]:
    """Every registered backend, usable or not, built-ins first."""
    return list(_registry().values())


def option_owner(key: str) -> str | None:
    """The usable backend that declares option ``key``; None if none does."""
    return next((r.name for r in _registry().values()
                 if r.backend is not None and r.backend.option(key) is not None), None)


def declared_option(key: str) -> Option | None:
    """The declaration of option ``key`` by the usable backend that has it; None if none."""
    owner = option_owner(key)
    return backend_class(owner).option(key) if owner is not None else None


def runs_precision(precision: str) -> list[str]:
    """The usable backends that declare ``precision``."""
    return [name for name in backend_names() if str(plain(precision)) in
            backend_class(name).precisions]


def refresh() -> None:
    """Forget what was found, so that the next call looks again (a plugin installed since)."""
    _registry.cache_clear()


@cache
def _registry() -> dict[str, Registration]:
    found: dict[str, Registration] = {}
    for name, target in BUILTIN.items():
        found[name] = _load(name, target, BUILTIN_SOURCE, found)
    plugins = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    for entry in plugins:
        source = (f"{entry.dist.name} {entry.dist.version}" if entry.dist is not None
                  else "entry point")
        if entry.name in found:
            # The same distribution found twice on sys.path is one plugin, not a clash.
            if found[entry.name].target != entry.value:
                taken = found[entry.name]
                found[f"{entry.name} ({source})"] = _report(Registration(
                    entry.name, entry.value, source,
                    error=f"the name is taken by {taken.source} {taken.target}"))
            continue
        found[entry.name] = _load(entry.name, entry.value, source, found)
    return found


def _load(name: str, target: str, source: str,
          loaded: dict[str, Registration]) -> Registration:
    module, _, attribute = target.partition(":")
    try:
        backend = getattr(importlib.import_module(module), attribute)
    except Exception as exc:  # a plugin's import may raise anything; it must not stop us
        return _report(Registration(name, target, source,
                                    error=f"{type(exc).__name__}: {one_line(exc)[:300]}"))
    others = [r.backend for r in loaded.values() if r.backend is not None]
    problems = declaration_problems(backend, name=name, others=others)
    if problems:
        return _report(Registration(name, target, source, error="; ".join(problems)))
    return Registration(name, target, source, backend=backend)


def _report(registration: Registration) -> Registration:
    warnings.warn(_BROKEN.format(name=registration.name, source=registration.source,
                                 error=registration.error), BackendPluginWarning, stacklevel=2)
    return registration


def declaration_problems(backend: object, *, name: str | None = None,
                         others: Sequence[type[Backend]] = ()) -> list[str]:
    """What is wrong with a backend class's declarations (empty: nothing).

    Checked: it is a :class:`Backend` registered under its own ``name``; its precisions
    are known ones; option names are unique (here and across ``others``) and no core key;
    each default, searched value and ``needs`` key lies within its domain; each condition
    names a core key or an option declared before it (``same_speed``: any of its options).
    """
    if not (isinstance(backend, type) and issubclass(backend, Backend)):
        return [f"{backend!r} is not a Backend subclass"]
    problems = []
    declared = getattr(backend, "name", None)
    if name is not None and declared != name:
        problems.append(f"registered as {name!r} but its name is {declared!r}")
    known = [p.value for p in Precision]
    if not backend.precisions:
        problems.append("declares no precision")
    problems += [f"unknown precision {p!r} (known: {', '.join(known)})"
                 for p in backend.precisions if p not in known]
    taken = {o.name: other.name for other in others for o in other.options}
    seen: list[str] = []
    for option in backend.options:
        where = f"option {option.name}"
        if option.name in CORE_KEYS or option.name in seen:
            problems.append(f"{where} is declared twice or is a core key")
        elif option.name in taken:
            problems.append(f"{where} is already declared by {taken[option.name]}")
        if option.default is None:
            problems.append(f"{where} has no default (None means unset)")
        for label, values in (("default", [option.default]), ("searched", option.searched),
                              ("needs", list(option.needs))):
            for value in values:
                try:
                    option.coerce(value)
                except ValueError as exc:
                    problems.append(f"{where}: {label} {exc}")
        problems += [f"{where}: condition on {c.key!r}, which is neither a core key nor "
                     "an option declared before it"
                     for c in [*option.applies, *option.needs.values()]
                     if c.key not in CORE_KEYS and c.key not in seen]
        speed = option.same_speed
        if speed and speed.key not in CORE_KEYS and backend.option(speed.key) is None:
            problems.append(f"{where}: same_speed names {speed.key!r}, no key of {declared}")
        seen.append(option.name)
    return problems

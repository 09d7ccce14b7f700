"""The Configuration of a trial: the core keys, plus the options its backend declares.

The core keys are typed fields: ``variant``, ``backend`` (a registered name, see
:mod:`tuner.backends.registry`), ``precision``, ``threads``, ``batch`` and ``hardware``.
Every other key is an :class:`~tuner.backends.base.Option` the chosen backend declares,
held as an extra field: ``config.tvm_opt_level`` reads it, and reads None where it is unset
or does not apply. Validation comes from the declarations alone, so this module names no
backend; a :class:`~tuner.errors.ConfigError` says why, in one line:

* a key the backend does not declare is refused, listing the backend's keys;
* a value outside its option's domain is refused; CLI strings are coerced (``"true"``,
  ``"3"``);
* an option whose conditions do not hold is refused with the condition ("calibration
  applies to precision=int8-static only"), and so is a value that needs something
  ("ort_execution_mode=parallel needs threads >= 2");
* a precision the backend does not declare is refused with the ones it does;
* the backend's :meth:`~tuner.backends.base.Backend.check` adds what conditions cannot say.

None means unset, so records written before options moved to the backends (they carry
every key of every backend, most of them null) parse as they did. :meth:`normalized` fills
the defaults of the options that apply, so two spellings of one configuration are equal
and hash the same; :meth:`digest` leaves unset keys out, so adding a backend or an option
changes no existing digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tuner.backends.base import CORE_KEYS, Backend, Precision, plain
from tuner.backends.registry import (
    DEFAULT_BACKEND,
    backend_class,
    backend_names,
    option_owner,
    runs_precision,
)
from tuner.errors import ConfigError, describe_validation

__all__ = ["CORE_KEYS", "Configuration", "Precision", "artifact_digest", "known_keys",
           "numerics_digest",
           "parse_assignments", "speed_digest"]


class Configuration(BaseModel):
    """One point of the search space.

    Example:
        >>> Configuration(variant="mlp", precision="int8-static", calibration="minmax")
        ...  # doctest: +SKIP
    """

    model_config = ConfigDict(extra="allow", frozen=True, use_enum_values=False)

    variant: str | None = Field(None, description="model variant; None = the workload's reference")
    backend: str = Field(DEFAULT_BACKEND, description="a registered backend")
    precision: Precision = Precision.FP32
    threads: int = Field(1, ge=1, le=1024, description="intra-op threads = cores reserved")
    batch: int = Field(1, ge=1, le=65536, description="samples per inference call")
    hardware: str = "local"

    @model_validator(mode="before")
    @classmethod
    def _none_is_unset(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if v is not None or k in CORE_KEYS}
        return data

    @model_validator(mode="after")
    def _check_options(self) -> Configuration:
        try:
            backend = backend_class(self.backend)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        given = dict(self.__pydantic_extra__ or {})
        values = self._core()
        problems = []
        precision = backend.precision_problem(self.precision)
        if precision:
            others = [b for b in runs_precision(self.precision) if b != backend.name]
            problems.append(precision + (f" ({self.precision.value} runs on the "
                                         f"{' and '.join(others)} backend"
                                         f"{'s' if len(others) > 1 else ''} only)"
                                         if others else ""))
        kept: dict[str, Any] = {}
        for option in backend.options:
            raw = given.pop(option.name, None)
            unmet = option.unmet(values)
            if unmet is not None:
                if raw is not None:
                    problems.append(f"{option.name} applies to {unmet} only")
                continue
            if raw is None:
                values[option.name] = option.default
                continue
            try:
                value = option.coerce(raw)
            except ValueError as exc:
                problems.append(f"{option.name}: {exc}")
                continue
            needed = option.value_unmet(value, values)
            if needed is not None:
                problems.append(f"{option.name}={plain(value)} needs {needed}")
            values[option.name] = kept[option.name] = value
        for key in given:
            owner = option_owner(key)
            reason = f" applies to the {owner} backend only" if owner else ": unknown key"
            problems.append(f"{key}{reason} ({_valid_keys(backend)})")
        if not problems:
            problems = backend.check(values)
        if problems:
            raise ValueError("; ".join(problems))
        object.__setattr__(self, "__pydantic_extra__", kept)
        return self

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            # Any backend's option reads None where it is unset or not this backend's.
            if not name.startswith("_") and option_owner(name) is not None:
                return None
            raise

    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> Configuration:
        """Validate ``values`` and raise :class:`ConfigError` with a one-line message."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            raise ConfigError("invalid configuration: " + describe_validation(exc)) from None

    def options(self) -> dict[str, Any]:
        """The backend options that are set (after :meth:`normalized`: every one that applies)."""
        return dict(self.__pydantic_extra__ or {})

    def normalized(self) -> Configuration:
        """Return a copy with the defaults of every option that applies filled in (options
        in the order the backend declares them)."""
        declared = backend_class(self.backend).options
        values = self._core() | self.options()
        if all(o.name in values or o.unmet(values) is not None for o in declared):
            return self
        for option in declared:
            if option.name not in values and option.unmet(values) is None:
                values[option.name] = option.default
        copy = self.model_copy()
        object.__setattr__(copy, "__pydantic_extra__",
                           {o.name: values[o.name] for o in declared if o.name in values})
        return copy

    def with_updates(self, **changes: Any) -> Configuration:
        """Return a validated copy with ``changes`` applied (strings are parsed)."""
        return Configuration.parse(self.as_dict() | changes)

    def as_dict(self) -> dict[str, Any]:
        """The flat JSON form records store: core keys, then the options that are set."""
        return self.model_dump(mode="json")

    def build_key(self) -> dict[str, Any]:
        """The keys that determine the built artifact (cache key material): variant,
        backend, precision, the backend's :attr:`~Backend.build_keys` and its options
        declared ``build=True``."""
        backend = backend_class(self.backend)
        keys = {"variant", "backend", "precision", *backend.build_keys,
                *(o.name for o in backend.options if o.build)}
        return {k: v for k, v in self.as_dict().items() if k in keys}

    def digest(self) -> str:
        """A stable short hash of the normalized configuration, unset keys left out."""
        values = {k: v for k, v in self.normalized().as_dict().items() if v is not None}
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]

    def _core(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in CORE_KEYS}


def _valid_keys(backend: type[Backend]) -> str:
    own = ", ".join(o.name for o in backend.options) or "none"
    return f"{backend.name}'s keys: {own}; every backend's: {', '.join(CORE_KEYS)}"


def known_keys() -> list[str]:
    """Every key some configuration may set: the core keys, then each backend's options."""
    return [*CORE_KEYS, *(o.name for name in backend_names()
                          for o in backend_class(name).options)]


def numerics_digest(config: Configuration) -> str:
    """Equal for configurations that compute the same numbers: they differ only in threads
    (ONNX Runtime's CPU kernels split work by output, so the thread count does not change
    a result; every bench grid here shows the same quality on 1 and 2 threads)."""
    return config.with_updates(threads=1).digest()


def artifact_digest(config: Configuration) -> str:
    """Equal for configurations that build the same artifact for the same target: they
    differ only in what changes speed, not numbers or build success (threads, a batch the
    backend does not build for, load-time options). Quality is the artifact's, so one
    build failure or quality miss answers every configuration of the digest."""
    config = config.normalized()
    values = config.build_key() | {"hardware": config.hardware}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def speed_digest(config: Configuration) -> str:
    """Equal for configurations that run the same operators at the same speed: they differ
    only in options whose :attr:`~tuner.backends.base.Option.same_speed` condition holds
    (static int8 calibrated by another method or on other rows builds the same graph with
    other scale constants — unless sensitive nodes stay fp32, which ones depending on the
    calibration)."""
    config = config.normalized()
    values = config._core() | config.options()
    neutral = {o.name: o.default for o in backend_class(config.backend).options
               if o.same_speed is not None and o.name in values and o.same_speed.holds(values)}
    return config.with_updates(**neutral).digest() if neutral else config.digest()


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """Turn ``["key=value", …]`` (CLI ``--set``) into a dict, rejecting malformed items."""
    result: dict[str, str] = {}
    valid = known_keys()
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        key = key.strip()
        if key not in valid:
            raise ConfigError(f"unknown configuration key {key!r} (valid: {', '.join(valid)})")
        result[key] = value.strip()
    return result

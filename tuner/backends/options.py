"""What a backend declares about its configuration keys: :class:`Option` (domain, default,
what the search samples, when it applies) and :class:`Condition`, plus the core keys and
precisions every configuration has.

Data only, importing nothing of the engine: the records (:mod:`tuner.trial.config`) validate
with these declarations and the search space samples them. :mod:`tuner.backends.base`
re-exports every name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from enum import Enum, StrEnum
from typing import Any

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
        follows_quality_floor: a search with a ``quality_ratio >= q`` constraint sets the
            option to ``1 - q`` (the largest relative quality drop a quantizer's own
            accuracy check may accept), unless the search space names it.
        help: one line for ``podium backends list`` and the README.
        short: the key's label in terminal tables, where 80 columns leave no room for
            ``int8_op_types`` (``ops``); empty: the name (``--wide`` always shows names).

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
    follows_quality_floor: bool = False
    help: str = ""
    short: str = ""

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

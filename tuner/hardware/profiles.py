"""Hardware profiles: the machines Podium tunes for, with their price, power and TVM target.

A tuned configuration only means something for the hardware it was measured on, and cost or
energy objectives need a price and a power model. Cloud targets ship as TOML files in the
``hardware_profiles`` package (more, or overrides, come from ``$PODIUM_HARDWARE_PROFILES``);
this module says what a profile is, reads and validates those files, and derives TVM
targets. ``local`` is detected instead (:mod:`tuner.hardware.detection`), and
:func:`tuner.hardware.registry.load_profile` serves both by name. TVM is imported lazily,
only by the functions that need it, because importing it costs seconds and most callers
never touch it.
"""

from __future__ import annotations

import copy
import os
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tuner.errors import HardwareError, describe_validation, one_line

if TYPE_CHECKING:
    import tvm

LOCAL = "local"
PROFILES_ENV = "PODIUM_HARDWARE_PROFILES"
FEATURES = ("native", "avx2", "generic")
# The ISA flags that change what the backends can generate, spelled as /proc/cpuinfo does.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "avx_vnni",
             "neon", "asimd")
ARM_FLAGS = ("neon", "asimd")


@dataclass(frozen=True)
class Price:
    """On-demand price; ``source`` and ``date`` say where it came from, since prices move."""

    usd_per_hour: float
    source: str
    date: str


@dataclass(frozen=True)
class PowerModel:
    """Idle and full-load power, for energy objectives; usually an estimate, labelled so."""

    idle_w: float
    tdp_w: float
    source: str


@dataclass(frozen=True)
class HardwareProfile:
    """A target machine: what it can execute, how to compile for it, and what it costs."""

    name: str
    description: str
    cores: int
    isa: tuple[str, ...]
    tvm_target: dict[str, Any] = field(hash=False)
    ort_providers: tuple[str, ...]
    price: Price | None
    power: PowerModel
    accelerator: str = ""
    detected: bool = False

    @property
    def ray_resource(self) -> str:
        """The Ray custom resource a node advertises to receive trials for this profile."""
        return f"hw:{self.name}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, for results, the API and reports."""
        return asdict(self) | {"isa": list(self.isa), "ort_providers": list(self.ort_providers),
                               "ray_resource": self.ray_resource}


class _Strict(BaseModel):
    # Strict: a TOML "2" for cores is a mistake worth reporting, not something to coerce.
    model_config = ConfigDict(extra="forbid", strict=True)


class _PriceSpec(_Strict):
    usd_per_hour: float = Field(ge=0, allow_inf_nan=False)
    source: str = Field(min_length=1)
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")


class _PowerSpec(_Strict):
    idle_w: float = Field(ge=0, allow_inf_nan=False)
    tdp_w: float = Field(gt=0, allow_inf_nan=False)
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _idle_within_tdp(self) -> _PowerSpec:
        if self.idle_w > self.tdp_w:
            raise ValueError(f"idle_w {self.idle_w} exceeds tdp_w {self.tdp_w}")
        return self


class _ProfileSpec(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str = Field(min_length=1)
    cores: int = Field(ge=1)
    isa: list[Literal[ISA_FLAGS]]
    ort_providers: list[str] = Field(min_length=1)
    accelerator: str = ""
    tvm_target: dict[str, Any]
    price: _PriceSpec | None = None
    power: _PowerSpec

    @field_validator("tvm_target")
    @classmethod
    def _target_has_kind(cls, target: dict[str, Any]) -> dict[str, Any]:
        # TVM itself is consulted only by check_tvm_target; this catches the obvious slip early.
        if not isinstance(target.get("kind"), str):
            raise ValueError("needs a string 'kind', e.g. \"llvm\"")
        return target


def shipped_dir() -> Path:
    return Path(str(resources.files("hardware_profiles")))


def profile_files() -> dict[str, Path]:
    """Profile name → TOML file; user files in ``$PODIUM_HARDWARE_PROFILES`` win."""
    files = {path.stem: path for path in shipped_dir().glob("*.toml")}
    extra = os.environ.get(PROFILES_ENV)
    if extra:
        folder = Path(extra).expanduser()
        if not folder.is_dir():
            raise HardwareError(f"{PROFILES_ENV}={extra} is not a directory")
        files.update({path.stem: path for path in folder.glob("*.toml")})
    if LOCAL in files:
        raise HardwareError(f"{files[LOCAL]}: the name 'local' is reserved for this machine")
    return files


def parse_profile(path: Path) -> HardwareProfile:
    try:
        spec = _ProfileSpec.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except ValidationError as exc:
        raise HardwareError(f"hardware profile {path}: {describe_validation(exc)}") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise HardwareError(f"hardware profile {path}: {one_line(exc)}") from exc
    if spec.name != path.stem:
        raise HardwareError(f"hardware profile {path}: name {spec.name!r} does not match "
                            f"the file name {path.stem!r}")
    price = Price(**spec.price.model_dump()) if spec.price else None
    return HardwareProfile(name=spec.name, description=spec.description, cores=spec.cores,
                           isa=tuple(spec.isa), tvm_target=spec.tvm_target,
                           ort_providers=tuple(spec.ort_providers), price=price,
                           power=PowerModel(**spec.power.model_dump()),
                           accelerator=spec.accelerator)


def llvm_parts(target: dict[str, Any]) -> list[dict[str, Any]]:
    """The LLVM (CPU) dicts of a TVM target: the target itself and/or its host."""
    parts = [target, target.get("host")]
    return [part for part in parts if isinstance(part, dict) and part.get("kind") == "llvm"]


def check_tvm_target(profile: HardwareProfile) -> tvm.target.Target:
    """Build the profile's TVM target, also checking that LLVM knows each ``mcpu``.

    TVM accepts any ``mcpu`` string and LLVM then silently compiles for a generic CPU, so an
    unknown name would cost performance without any error; it is rejected here instead.
    """
    import tvm
    from tvm.target import codegen

    try:
        target = tvm.target.Target(copy.deepcopy(profile.tvm_target))
    except Exception as exc:  # TVM's FFI raises ValueError, TypeError or its own errors.
        raise HardwareError(f"hardware profile {profile.name}: TVM rejects tvm_target: "
                            f"{one_line(exc)}") from exc
    for part in llvm_parts(profile.tvm_target):
        mcpu = part.get("mcpu")
        triple = part.get("mtriple") or codegen.llvm_get_system_triple()
        if mcpu and not codegen.llvm_is_valid_cpu(mcpu, triple):
            raise HardwareError(f"hardware profile {profile.name}: LLVM "
                                f"{codegen.llvm_version_major()} does not know mcpu {mcpu!r} "
                                f"for {triple}")
    return target


def tvm_target_for(profile: HardwareProfile, features: str) -> dict[str, Any]:
    """The profile's TVM target at a feature level, keeping ``num-cores``.

    ``avx2`` and ``generic`` trade speed for portability: an artifact built for them also runs
    on older CPUs of the same family. ``avx2`` uses ``znver2`` on AMD (not ``znver3``, whose
    VAES/VPCLMULQDQ a Zen 2 lacks) and ``haswell`` elsewhere.
    """
    if features not in FEATURES:
        raise HardwareError(f"unknown tvm features {features!r}; valid: {', '.join(FEATURES)}")
    target = copy.deepcopy(profile.tvm_target)
    if features == "native":
        return target
    cpus = llvm_parts(target)
    if not cpus:
        raise HardwareError(f"hardware profile {profile.name}: tvm_target has no llvm part "
                            f"to apply features={features} to")
    arm = any(flag in profile.isa for flag in ARM_FLAGS)
    if features == "avx2" and "avx2" not in profile.isa:
        raise HardwareError(f"hardware profile {profile.name} has no avx2; "
                            "use features=native or generic")
    for cpu in cpus:
        amd = str(cpu.get("mcpu", "")).startswith("znver")
        if features == "avx2":
            cpu["mcpu"] = "znver2" if amd else "haswell"
        else:
            cpu["mcpu"] = "generic" if arm else "x86-64"
        cpu.pop("mattr", None)  # extra features would undo the chosen level
    return target

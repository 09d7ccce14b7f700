"""Hardware profiles: the machines Podium tunes for, with their price, power and TVM target.

A tuned configuration only means something for the hardware it was measured on, and cost or
energy objectives need a price and a power model. Cloud targets ship as TOML files in the
``hardware_profiles`` package (more, or overrides, come from ``$PODIUM_HARDWARE_PROFILES``);
``local`` is detected from this Linux machine, or simulated from the profile named by
``$PODIUM_LOCAL_PROFILE`` (:func:`local_host` is the one place host facts are read). TVM is
imported lazily, only by the functions that need it, because importing it costs seconds and
most callers never touch it.
"""

from __future__ import annotations

import copy
import datetime
import functools
import math
import os
import platform
import tomllib
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tuner.errors import HardwareError, describe_validation, one_line

if TYPE_CHECKING:
    import tvm

LOCAL = "local"
PROFILES_ENV = "PODIUM_HARDWARE_PROFILES"
LOCAL_PRICE_ENV = "PODIUM_LOCAL_PRICE_PER_HOUR"
# Names a profile whose host stands in for this machine's (tests, what-if reasoning).
LOCAL_PROFILE_ENV = "PODIUM_LOCAL_PROFILE"
FEATURES = ("native", "avx2", "generic")
# The ISA flags that change what the backends can generate, spelled as /proc/cpuinfo does.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "amx_tile", "avx_vnni", "neon", "asimd")
_ARM_FLAGS = ("neon", "asimd")
# (vendor, flag, mcpu), most specific first; "" matches any vendor. AMD with AVX2 but no VAES is
# Zen 2, which lacks instructions that znver3 would let LLVM emit.
_MCPU_RULES = (("AuthenticAMD", "avx512f", "znver4"), ("AuthenticAMD", "vaes", "znver3"),
               ("AuthenticAMD", "avx2", "znver2"), ("GenuineIntel", "amx_tile", "sapphirerapids"),
               ("GenuineIntel", "avx512_vnni", "cascadelake"),
               ("GenuineIntel", "avx512f", "skylake-avx512"), ("", "avx2", "haswell"))
# Local power is unknown; a vCPU's share of a typical server socket is a fair first guess.
_LOCAL_WATTS_PER_CORE = (1.5, 5.0)


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


def _package_dir() -> Path:
    return Path(str(resources.files("hardware_profiles")))


def _profile_files() -> dict[str, Path]:
    """Profile name → TOML file; user files in ``$PODIUM_HARDWARE_PROFILES`` win."""
    files = {path.stem: path for path in _package_dir().glob("*.toml")}
    extra = os.environ.get(PROFILES_ENV)
    if extra:
        folder = Path(extra).expanduser()
        if not folder.is_dir():
            raise HardwareError(f"{PROFILES_ENV}={extra} is not a directory")
        files.update({path.stem: path for path in folder.glob("*.toml")})
    if LOCAL in files:
        raise HardwareError(f"{files[LOCAL]}: the name 'local' is reserved for this machine")
    return files


def _parse(path: Path) -> HardwareProfile:
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


def profile_names() -> list[str]:
    """Every profile ``load_profile`` accepts, sorted, ``local`` included."""
    return sorted({LOCAL, *_profile_files()})


def load_profile(name: str) -> HardwareProfile:
    """Load and validate profile ``name``; ``local`` is detected rather than read."""
    if name == LOCAL:
        return detect_local()
    files = _profile_files()
    if name not in files:
        raise HardwareError(f"unknown hardware profile {name!r}; valid: "
                            f"{', '.join(profile_names())}")
    return _parse(files[name])


def _llvm_parts(target: dict[str, Any]) -> list[dict[str, Any]]:
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
    for part in _llvm_parts(profile.tvm_target):
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
    cpus = _llvm_parts(target)
    if not cpus:
        raise HardwareError(f"hardware profile {profile.name}: tvm_target has no llvm part "
                            f"to apply features={features} to")
    arm = any(flag in profile.isa for flag in _ARM_FLAGS)
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


@dataclass(frozen=True)
class Host:
    """The machine this process reasons about: read from Linux, or simulated from a profile.

    Every fact Podium derives from the host (the ``local`` profile, its price, fingerprints)
    comes from :func:`local_host`, so ``$PODIUM_LOCAL_PROFILE`` replaces all of them at once.
    Core pinning and thread limits keep reading the real affinity: measurements always run
    here, whatever host is simulated.
    """

    vendor: str
    model: str
    flags: frozenset[str]
    caches: dict[str, str] = field(hash=False)
    cores: int
    cpus: int
    machine: str
    mcpu: str = ""  # set when simulated; a real host's is chosen against LLVM, lazily
    simulated: str = ""  # the profile simulated, "" for the real machine


def _read_cpuinfo() -> dict[str, str]:
    """The first processor block of /proc/cpuinfo (all CPUs of a machine report alike)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def _read_caches() -> dict[str, str]:
    """Cache sizes of cpu0 by level (``L1d``, ``L1i``, ``L2``, ``L3``), as sysfs spells them."""
    suffix = {"Data": "d", "Instruction": "i"}
    sizes = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size = (
                (index / item).read_text().strip() for item in ("level", "type", "size"))
        except OSError:
            continue
        sizes[f"L{level}{suffix.get(kind, '')}"] = size
    return sizes


def _real_host() -> Host:
    info = _read_cpuinfo()
    return Host(vendor=info.get("vendor_id", ""),
                model=info.get("model name") or platform.processor() or platform.machine(),
                flags=frozenset((info.get("flags") or info.get("Features") or "").split()),
                caches=_read_caches(), cores=len(os.sched_getaffinity(0)),
                cpus=os.cpu_count() or 1, machine=platform.machine())


def _simulated_host(name: str, real: Host) -> Host:
    """The host of profile ``name``, capped at the real usable cores (trials run here)."""
    files = _profile_files()
    if name not in files:
        raise HardwareError(f"{LOCAL_PROFILE_ENV}={name!r} is not a hardware profile to "
                            f"simulate; valid: {', '.join(sorted(files))}")
    profile = _parse(files[name])
    cpu = next(iter(_llvm_parts(profile.tvm_target)), None)
    if cpu is None:
        raise HardwareError(f"{LOCAL_PROFILE_ENV}={name}: the profile's tvm_target has no llvm "
                            "part, so there is no CPU host to simulate")
    mcpu = str(cpu.get("mcpu") or "generic")
    arm = any(flag in profile.isa for flag in _ARM_FLAGS)
    # Profiles name no vendor; the LLVM CPU does (znver* is AMD's), and ARM has no vendor_id.
    vendor = "" if arm else "AuthenticAMD" if mcpu.startswith("znver") else "GenuineIntel"
    return Host(vendor=vendor, model=profile.description, flags=frozenset(profile.isa),
                caches={}, cores=min(profile.cores, real.cores), cpus=profile.cores,
                machine="aarch64" if arm else "x86_64", mcpu=mcpu, simulated=name)


@functools.cache
def local_host() -> Host:
    """This machine, or the profile named by ``$PODIUM_LOCAL_PROFILE``; probed once per
    process (:func:`reset_detection` forgets it).

    Raises:
        HardwareError: ``$PODIUM_LOCAL_PROFILE`` names no profile (or ``local``).
    """
    real = _real_host()
    name = os.environ.get(LOCAL_PROFILE_ENV, "").strip()
    return _simulated_host(name, real) if name else real


def missing_here(isa: tuple[str, ...]) -> list[str]:
    """The ISA flags of ``isa`` this machine really lacks (whatever host is simulated):
    code compiled natively for them would stop at an illegal instruction here."""
    real = _real_host().flags
    return [flag for flag in isa if flag not in real]


def reset_detection() -> None:
    """Forget the probed host, so the next call reads it (and ``$PODIUM_LOCAL_PROFILE``) again."""
    local_host.cache_clear()
    _detect_hardware.cache_clear()


def _local_mcpu(vendor: str, flags: frozenset[str]) -> str:
    """The most specific ``mcpu`` this CPU supports that the installed LLVM knows."""
    chain = ["generic"]
    if platform.machine() in ("x86_64", "AMD64"):
        chain = [mcpu for rule_vendor, flag, mcpu in _MCPU_RULES
                 if rule_vendor in ("", vendor) and flag in flags] + ["x86-64"]
    from tvm.target import codegen

    triple = codegen.llvm_get_system_triple()
    return next((cpu for cpu in chain if codegen.llvm_is_valid_cpu(cpu, triple)), "generic")


@functools.cache
def _detect_hardware() -> HardwareProfile:
    """The local host as a profile, once per process; only the price is left for
    ``detect_local``."""
    host = local_host()
    cores = host.cores
    idle, tdp = _LOCAL_WATTS_PER_CORE
    mcpu = host.mcpu or _local_mcpu(host.vendor, host.flags)
    if host.simulated:
        description = (f"simulated {host.simulated} ({LOCAL_PROFILE_ENV}): {host.model}; "
                       f"measured on this machine, {cores} usable cores")
    else:
        description = (f"this machine: {host.model}, {cores} usable of {host.cpus} CPUs "
                       f"({host.machine})")
    return HardwareProfile(
        name=LOCAL, description=description, cores=cores,
        isa=tuple(flag for flag in ISA_FLAGS if flag in host.flags),
        tvm_target={"kind": "llvm", "mcpu": mcpu, "num-cores": cores},
        ort_providers=("CPUExecutionProvider",), price=None,
        power=PowerModel(idle * cores, tdp * cores,
                         f"estimate: {idle} W idle / {tdp} W full load per vCPU, not measured"),
        detected=True)


def _local_price(cores: int) -> Price:
    """``$PODIUM_LOCAL_PRICE_PER_HOUR`` if set, else a comparable cloud vCPU's share."""
    override = os.environ.get(LOCAL_PRICE_ENV)
    if override is not None:
        try:
            value = float(override)
            valid = math.isfinite(value) and value >= 0
        except ValueError:
            valid = False
        if not valid:
            raise HardwareError(f"{LOCAL_PRICE_ENV}={override!r} is not a price in USD per hour")
        return Price(value, f"user: {LOCAL_PRICE_ENV}", datetime.date.today().isoformat())
    # Always the shipped file, so a user override cannot take the reference price away.
    amd = local_host().vendor == "AuthenticAMD"
    ref = _parse(_package_dir() / ("aws-c7a.large.toml" if amd else "aws-c7i.large.toml"))
    assert ref.price is not None  # every shipped profile has a price (tested)
    hourly, date = ref.price.usd_per_hour, ref.price.date
    return Price(round(hourly / ref.cores * cores, 6),
                 f"estimate: {ref.name} on-demand ${hourly}/h ÷ {ref.cores} vCPU × {cores} usable "
                 f"cores (public list price as of {date}; re-check before relying on it)", date)


def detect_local() -> HardwareProfile:
    """This machine as profile ``local``; the probe is cached, the price env var is not."""
    profile = _detect_hardware()
    return replace(profile, price=_local_price(profile.cores))


def fingerprint(profile: HardwareProfile) -> dict[str, Any]:
    """What ran a measurement: the profile's claims plus facts read from this host.

    Host facts (CPU model, caches, arch) let a result cache notice that an ``aws-c7i.large``
    run landed on a different CPU; the node name is kept only for ``local``, because cloud
    instances of one type are interchangeable while local machines are not. Under
    ``$PODIUM_LOCAL_PROFILE`` the host facts are the simulated ones and ``simulated`` names
    the profile, so such a record never passes for a real one.
    """
    host = local_host()
    result: dict[str, Any] = {
        "profile": profile.name, "cpu_model": host.model, "cores": profile.cores,
        "isa": sorted(profile.isa), "accelerator": profile.accelerator,
        "caches": dict(host.caches), "machine": host.machine}
    if profile.detected:
        result["node"] = platform.node()
    if host.simulated:
        result["simulated"] = host.simulated
    return result

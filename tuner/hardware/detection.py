"""The local host: detected from this Linux machine, or simulated from a profile.

``local`` is the one profile read from the machine rather than from a file, and
``$PODIUM_LOCAL_PROFILE`` names a profile whose host stands in for this machine's
(:func:`local_host` is the one place host facts are read). Fingerprints say what ran a
measurement, from the profile's claims plus these host facts.
"""

from __future__ import annotations

import datetime
import functools
import math
import os
import platform
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tuner.errors import HardwareError
from tuner.hardware.profiles import (
    ARM_FLAGS,
    ISA_FLAGS,
    LOCAL,
    HardwareProfile,
    PowerModel,
    Price,
    llvm_parts,
    parse_profile,
    profile_files,
    shipped_dir,
)

LOCAL_PRICE_ENV = "PODIUM_LOCAL_PRICE_PER_HOUR"
# Names a profile whose host stands in for this machine's (tests, what-if reasoning).
LOCAL_PROFILE_ENV = "PODIUM_LOCAL_PROFILE"
# (vendor, flag, mcpu), most specific first; "" matches any vendor. AMD with AVX2 but no VAES is
# Zen 2, which lacks instructions that znver3 would let LLVM emit.
_MCPU_RULES = (("AuthenticAMD", "avx512f", "znver4"), ("AuthenticAMD", "vaes", "znver3"),
               ("AuthenticAMD", "avx2", "znver2"), ("GenuineIntel", "amx_tile", "sapphirerapids"),
               ("GenuineIntel", "avx512_vnni", "cascadelake"),
               ("GenuineIntel", "avx512f", "skylake-avx512"), ("", "avx2", "haswell"))
# Local power is unknown; a vCPU's share of a typical server socket is a fair first guess.
_LOCAL_WATTS_PER_CORE = (1.5, 5.0)


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
    files = profile_files()
    if name not in files:
        raise HardwareError(f"{LOCAL_PROFILE_ENV}={name!r} is not a hardware profile to "
                            f"simulate; valid: {', '.join(sorted(files))}")
    profile = parse_profile(files[name])
    cpu = next(iter(llvm_parts(profile.tvm_target)), None)
    if cpu is None:
        raise HardwareError(f"{LOCAL_PROFILE_ENV}={name}: the profile's tvm_target has no llvm "
                            "part, so there is no CPU host to simulate")
    mcpu = str(cpu.get("mcpu") or "generic")
    arm = any(flag in profile.isa for flag in ARM_FLAGS)
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
    ref = parse_profile(shipped_dir() / ("aws-c7a.large.toml" if amd else "aws-c7i.large.toml"))
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

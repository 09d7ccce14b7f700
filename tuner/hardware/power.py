"""Power and energy: labelled estimates (MEASUREMENT.md rule 6).

There is no power meter or RAPL here, so power is the hardware profile's TDP model:
idle + (TDP − idle) × utilisation, with utilisation = cores busy / cores of the target.
``power_source`` says ``estimated_tdp``; an estimate can rank but never satisfies a power
constraint (see :mod:`tuner.trial.constraints`).
"""

from __future__ import annotations

from tuner.hardware.profiles import HardwareProfile

ESTIMATED_TDP = "estimated_tdp"


def estimate_power_w(profile: HardwareProfile, threads: int) -> tuple[float, str]:
    """Estimated watts while ``threads`` cores of ``profile`` run the model."""
    utilisation = min(1.0, threads / max(profile.cores, 1))
    power = profile.power.idle_w + (profile.power.tdp_w - profile.power.idle_w) * utilisation
    return power, ESTIMATED_TDP


def energy_mj_per_inference(power_w: float,
                             throughput_per_s: float | None) -> float | None:
    """Energy per sample in mJ: watts × seconds per sample (from offline throughput); None
    where throughput was not measured."""
    if not throughput_per_s or throughput_per_s <= 0:
        return None
    return power_w / throughput_per_s * 1000.0

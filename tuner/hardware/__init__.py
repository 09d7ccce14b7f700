"""Hardware stage: where a trial runs, and what running there costs.

Owns the hardware profiles (``profiles``: what a target is, its TOML files, TVM targets),
the local host (``detection``: read from this machine or simulated from a profile, and the
fingerprint of what ran a measurement), profiles by name (``registry``) and the labelled
estimates derived from a profile (``power``, ``cost``). Every name is re-exported here:
``from tuner.hardware import load_profile``.

May import: :mod:`tuner.errors` only (``workloads`` sits below everything); every stage
above imports this one.
"""

from __future__ import annotations

from tuner.hardware.cost import cost_per_million_usd
from tuner.hardware.detection import (
    LOCAL_PRICE_ENV,
    LOCAL_PROFILE_ENV,
    Host,
    detect_local,
    fingerprint,
    local_host,
    missing_here,
    reset_detection,
)
from tuner.hardware.power import ESTIMATED_TDP, energy_mj_per_inference, estimate_power_w
from tuner.hardware.profiles import (
    FEATURES,
    ISA_FLAGS,
    LOCAL,
    PROFILES_ENV,
    HardwareProfile,
    PowerModel,
    Price,
    check_tvm_target,
    tvm_target_for,
)
from tuner.hardware.registry import load_profile, profile_names

__all__ = [
    "ESTIMATED_TDP",
    "FEATURES",
    "ISA_FLAGS",
    "LOCAL",
    "LOCAL_PRICE_ENV",
    "LOCAL_PROFILE_ENV",
    "PROFILES_ENV",
    "HardwareProfile",
    "Host",
    "PowerModel",
    "Price",
    "check_tvm_target",
    "cost_per_million_usd",
    "detect_local",
    "energy_mj_per_inference",
    "estimate_power_w",
    "fingerprint",
    "load_profile",
    "local_host",
    "missing_here",
    "profile_names",
    "reset_detection",
    "tvm_target_for",
]

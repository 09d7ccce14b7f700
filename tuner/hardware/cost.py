"""Cost per million inferences, derived from throughput and a sourced price (rule 7).

cost = price_per_hour ÷ (throughput_per_s × 3600) × 1e6, with ``price_source`` carrying
the profile's source and date so a stale price is visible.
"""

from __future__ import annotations

from tuner.hardware.profiles import HardwareProfile


def cost_per_million_usd(profile: HardwareProfile,
                         throughput_per_s: float | None) -> tuple[float | None, str]:
    if profile.price is None:
        return None, "unavailable"
    source = f"{profile.price.source} ({profile.price.date})"
    if not throughput_per_s or throughput_per_s <= 0:  # None: not measured
        return None, source
    return profile.price.usd_per_hour / (throughput_per_s * 3600.0) * 1e6, source

"""Hardware profiles by name: the shipped and user TOML files, and ``local``, detected."""

from __future__ import annotations

from tuner.errors import HardwareError
from tuner.hardware.detection import detect_local
from tuner.hardware.profiles import LOCAL, HardwareProfile, parse_profile, profile_files


def profile_names() -> list[str]:
    """Every profile ``load_profile`` accepts, sorted, ``local`` included."""
    return sorted({LOCAL, *profile_files()})


def load_profile(name: str) -> HardwareProfile:
    """Load and validate profile ``name``; ``local`` is detected rather than read."""
    if name == LOCAL:
        return detect_local()
    files = profile_files()
    if name not in files:
        raise HardwareError(f"unknown hardware profile {name!r}; valid: "
                            f"{', '.join(profile_names())}")
    return parse_profile(files[name])

"""Where Podium keeps its files: everything lives under ``PODIUM_HOME``.

``PODIUM_HOME`` (default ``~/.cache/podium``) holds built workloads, built artifacts,
studies and the knowledge store. Tests point it at a temporary folder. It is defined here,
in the bottom layer, because workloads cache under it too; the engine imports it from here.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """Return PODIUM_HOME, created if missing."""
    path = Path(os.environ.get("PODIUM_HOME") or Path.home() / ".cache" / "podium")
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(kind: str) -> Path:
    """A sub-folder of PODIUM_HOME for one kind of cached thing (``workloads``, …)."""
    path = home() / kind
    path.mkdir(parents=True, exist_ok=True)
    return path

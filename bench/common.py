"""What several benchmarks share: a private PODIUM_HOME seeded with the built workloads,
and writing results as they come.

Benchmarks run as scripts (``python bench/X.py``), so this folder is first on the import
path: no file here may be named like a package the project imports (``tvm``, ``onnx``, …).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any


def seed_home(home: Path) -> None:
    """Copy the built-in workloads already built in the user's home (verified by hash on
    load) into ``home``, so the bench does not rebuild them; nothing is written back."""
    user = Path(os.environ.get("PODIUM_USER_HOME", Path.home() / ".cache" / "podium"))
    if (user / "workloads").is_dir() and not (home / "workloads").exists():
        shutil.copytree(user / "workloads", home / "workloads")


def save_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write every row so far, so an interrupted bench keeps what it measured."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2, default=str))

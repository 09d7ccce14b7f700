"""The registry of workloads: built-in ones by name, user ones from files.

>>> import workloads
>>> workloads.names()  # doctest: +SKIP
['convnet', 'digits', 'encoder']
>>> wl = workloads.get("digits")  # builds once, then cached under PODIUM_HOME
"""

from __future__ import annotations

from workloads.base import Metric, Variant, Workload
from workloads.registry import DEFAULT_WORKLOAD, get, names
from workloads.user import from_files

__all__ = ["DEFAULT_WORKLOAD", "Metric", "Variant", "Workload", "from_files", "get", "names"]

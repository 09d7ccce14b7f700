"""The import graph of ``tuner/``, ``workloads/`` and ``leaderboard/``: one way down, no cycles.

Every module is parsed (nothing is imported) and every import in it — module level, inside
functions, under ``TYPE_CHECKING`` — becomes an edge to the module it names:
``from a.b import c`` is ``a.b.c`` when that is a module, else ``a.b``. Importing ``a.b.c``
also runs ``a/__init__`` and ``a/b/__init__``; those implicit parents are not edges, since
a package's ``__init__`` exists to re-export its submodules and an edge back to it from
each of them would make every re-export a cycle. An ``__init__`` importing a submodule that
imports the package back is still caught: both of those are explicit edges.

The rules, as data below: no cycle between modules; within ``tuner/`` a module imports only
its own layer or the layers under it (:data:`LAYERS`); ``workloads/`` imports nothing of
``tuner/`` or ``leaderboard/``; the engine and the leaderboard meet only in the CLI and in
the records (:data:`LEADERBOARD_MAY_IMPORT`).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tuner", "workloads", "leaderboard")

# Top to bottom. A module's layer is the one with its longest matching prefix ("tuner" alone
# is the package facade); a tuner module may import its own layer and any layer below it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("facade", ("tuner",)),
    ("cli", ("tuner.cli",)),
    ("search", ("tuner.search",)),
    ("knowledge, trial", ("tuner.knowledge", "tuner.trial")),
    ("backends, transforms", ("tuner.backends", "tuner.transforms")),
    ("hardware", ("tuner.hardware",)),
    # The records every stage, backends included, and the leaderboard read.
    ("records", ("tuner.trial.config", "tuner.trial.results", "tuner.trial.constraints")),
    # The backend plugin contract and registry, which the Configuration validates against.
    ("contract", ("tuner.backends.base", "tuner.backends.options", "tuner.backends.registry")),
    ("base", ("tuner.errors", "tuner.client")),
    ("workloads", ("workloads",)),
)
# The only layers of the engine the leaderboard may import (the shared record schema), and
# the only one that may import the leaderboard (lazily: ``podium leaderboard``, the demo).
LEADERBOARD_MAY_IMPORT = ("records", "base")
IMPORTS_LEADERBOARD = ("cli",)
HEAVY = ("tvm", "ray", "optuna")
# A string naming a file, not a module (``"leaderboard.db"``).
_FILE_SUFFIXES = {"db", "json", "jsonl", "toml", "npz", "onnx", "so", "log", "txt", "html"}
_DOTTED = re.compile(rf"(?:{'|'.join(PACKAGES)})(?:\.[A-Za-z_]\w*)*")
_IMPORT_IN_CODE = re.compile(rf"\b(?:from|import)\s+({_DOTTED.pattern})")


@cache
def modules() -> dict[str, Path]:
    """Dotted name → file of every module of :data:`PACKAGES` (a package is its __init__)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """What one import statement names; a name of our packages that is no module is kept
    as it is, for :func:`test_every_import_names_a_module` to report."""
    known = modules()
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] in PACKAGES]
    if node.level:
        base = module.split(".")
        if modules()[module].name != "__init__.py":
            base.pop()
        base = base[:len(base) - node.level + 1]
        source = ".".join([*base, node.module] if node.module else base)
    else:
        source = node.module or ""
    if source.split(".")[0] not in PACKAGES:
        return []
    return [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source
            for a in node.names]


@cache
def graph() -> dict[str, set[str]]:
    """Module → the modules of our packages it imports (anywhere in its body)."""
    edges = {}
    for module, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        edges[module] = {target for node in ast.walk(tree)
                         if isinstance(node, ast.Import | ast.ImportFrom)
                         for target in _targets(module, node)} - {module}
    return edges


def layer(module: str) -> int | None:
    """Index of ``module``'s layer in :data:`LAYERS` (0 is the top); None outside them."""
    best, index = "", None
    for position, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            exact_only = prefix == "tuner"
            matches = module == prefix or (not exact_only and module.startswith(prefix + "."))
            if matches and len(prefix) > len(best):
                best, index = prefix, position
    return index


def _layer_named(name: str) -> int:
    return next(i for i, (label, _) in enumerate(LAYERS) if label == name)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan; the graph is small enough to recurse
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return [_one_cycle(component, edges) for component in components]


def _one_cycle(component: list[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest path from the component's first module back to itself."""
    members, start = set(component), component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(edges[node] & members):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no cycle in component {component}")


def test_every_import_names_a_module():
    missing = sorted(f"{module} imports {target}" for module, targets in graph().items()
                     for target in targets if target not in modules())
    assert not missing, "\n".join(missing)


def test_no_import_cycles():
    found = [" → ".join(cycle) for cycle in _cycles(graph())]
    assert not found, "import cycles:\n" + "\n".join(found)


def test_workloads_import_nothing_of_the_engine_or_the_leaderboard():
    upward = sorted(f"{module} imports {target}" for module, targets in graph().items()
                    if module.split(".")[0] == "workloads"
                    for target in targets if target.split(".")[0] != "workloads")
    assert not upward, "\n".join(upward)


def test_every_engine_module_has_a_layer():
    unplaced = sorted(m for m in modules() if m.split(".")[0] == "tuner" and layer(m) is None)
    assert not unplaced, f"add these to LAYERS: {unplaced}"


def test_the_engine_imports_only_downward():
    upward = []
    for module, targets in graph().items():
        own = layer(module)
        if module.split(".")[0] != "tuner" or own is None:
            continue
        for target in sorted(targets):
            theirs = layer(target)
            if theirs is not None and theirs < own:
                upward.append(f"{module} ({LAYERS[own][0]}) imports {target} "
                              f"({LAYERS[theirs][0]})")
    assert not upward, "\n".join(upward)


def test_the_engine_and_the_leaderboard_meet_only_in_the_cli_and_the_records():
    allowed = {_layer_named(name) for name in LEADERBOARD_MAY_IMPORT}
    importers = {_layer_named(name) for name in IMPORTS_LEADERBOARD}
    crossing = []
    for module, targets in graph().items():
        top = module.split(".")[0]
        for target in sorted(targets):
            other = target.split(".")[0]
            if top == "leaderboard" and other == "tuner" and layer(target) not in allowed:
                crossing.append(f"{module} imports {target}")
            if top == "tuner" and other == "leaderboard" and layer(module) not in importers:
                crossing.append(f"{module} imports {target}")
    assert not crossing, "\n".join(crossing)


def _docstrings(tree: ast.AST) -> set[int]:
    nodes = [tree, *(n for n in ast.walk(tree)
                     if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef))]
    return {id(n.body[0].value) for n in nodes
            if n.body and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)}


def test_module_paths_in_strings_exist():
    """What the code spawns or imports by name (``python -m tuner.trial.worker``, a child's
    ``-c`` code, a registry's module, ``uvicorn module:app``) names a module that exists."""
    stale = []
    for module, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if (not isinstance(node, ast.Constant) or not isinstance(node.value, str)
                    or id(node) in skip):
                continue
            named = [m.group(1) for m in _IMPORT_IN_CODE.finditer(node.value)]
            whole = node.value.split(":")[0]
            if _DOTTED.fullmatch(whole) and whole.rsplit(".", 1)[-1] not in _FILE_SUFFIXES:
                named.append(whole)
            stale += [f"{module}:{node.lineno} names {name}" for name in named
                      if name not in modules()]
    assert not stale, "\n".join(stale)


def test_importing_the_packages_loads_no_heavy_dependency():
    """``import tuner`` (and each stage's package, and the CLI's entry point) stays light:
    TVM, Ray and Optuna load only when a trial or a search needs them."""
    code = ("import sys, tuner\n"
            "tuner.optimize, tuner.OptimizationResult\n"
            "import tuner.cli, tuner.search, tuner.knowledge, tuner.trial, tuner.backends\n"
            "import tuner.backends.tvm, tuner.transforms, tuner.hardware, workloads\n"
            "from tuner.cli import main\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout

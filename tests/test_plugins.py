"""Backends as plugins: one registered from the test suite through the ``podium.backends``
entry-point group is validated, listed, searched over, and passes the conformance suite
(:func:`tuner.backends.checks.check_backend`) that every registered backend passes.

The plugin is "installed" the way pip would leave it: a ``*.dist-info`` folder with an
``entry_points.txt`` beside its module, in a folder put on ``sys.path`` (this process) and
on ``PYTHONPATH`` (the search's Ray workers and the trial worker processes import it too).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tuner.backends import registry
from tuner.backends.checks import check_backend
from tuner.backends.registry import BackendPluginWarning, backend_names, get_backend
from tuner.cli import main
from tuner.errors import ConfigError, HardwareError
from tuner.search.space import default_space
from tuner.trial.config import Configuration, parse_assignments
from tuner.trial.run import validate

PLUGIN = Path(__file__).parent / "plugins" / "tiny_backend.py"
# Every backend the registry knows once the plugin is installed, in its order.
ALL = [*registry.BUILTIN, "tiny"]
SLOW = {"tvm"}  # compiles: only with the slow tests


def _install(site: Path, distribution: str, entry_points: dict[str, str]) -> None:
    info = site / f"{distribution.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\n"
                                   "Version: 0.1\n")
    lines = [f"{name} = {target}" for name, target in entry_points.items()]
    (info / "entry_points.txt").write_text("[podium.backends]\n" + "\n".join(lines) + "\n")


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    """A site folder holding the tiny plugin, visible here and to every child process."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(PLUGIN, site / PLUGIN.name)
    _install(site, "podium-tiny", {"tiny": "tiny_backend:TinyBackend"})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p))
    registry.refresh()
    yield site
    sys.modules.pop("tiny_backend", None)
    registry.refresh()


def test_a_plugin_is_registered_validated_and_searched(plugin_site):
    assert backend_names() == ALL
    found = {r.name: r for r in registry.registrations()}
    assert found["tiny"].source == "podium-tiny 0.1" and found["ort"].source == "built-in"
    config = Configuration.parse(parse_assignments(["backend=tiny", "tiny_mode=b"]))
    assert config.tiny_mode == "b" and config.tvm_opt_level is None
    assert Configuration.parse({"backend": "tiny"}).normalized().tiny_mode == "a"
    for values, reason in [({"backend": "tiny", "precision": "fp16"},
                            "precision fp16 is not one of tiny's: fp32, bf16"),
                           ({"tiny_mode": "a"}, "tiny_mode applies to the tiny backend only"),
                           ({"backend": "tiny", "tiny_mode": "c"}, "'c' is not one of a, b"),
                           ({"backend": "tiny", "per_channel": True}, "ort backend only")]:
        with pytest.raises(ConfigError, match=reason):
            Configuration.parse(values)
    space = default_space(["m"], hardware=["local"], cores=1)
    assert space.backends[0] == "ort" and space.backends[-1] == "tiny"
    assert "tvm" not in space.backends  # a backend may stay out of the default space
    assert space.precisions["tiny"][0] == "fp32" and space.options["tiny_mode"] == ["a", "b"]
    tiny = space.restrict({"backend": "tiny", "precision": "fp32"})
    assert {c.tiny_mode for c in tiny.configurations()} == {"a", "b"}
    assert all(tiny.params_for(c) is not None for c in tiny.configurations())


@pytest.mark.host_sensitive
def test_a_backends_precisions_follow_the_targets_isa(plugin_site, local_host, digits):
    """The default space offers a precision where every target searched runs it natively;
    a trial asking for one the target lacks is refused before anything is built."""
    local_host("aws-c7a.large")  # its ISA has avx512_bf16
    assert default_space(["m"], hardware=["local"], cores=1).precisions["tiny"] == ["fp32",
                                                                                    "bf16"]
    both = default_space(["m"], hardware=["local", "gcp-n2-standard-4"], cores=1)
    assert both.precisions["tiny"] == ["fp32"]
    assert both.precisions["ort"] == ["fp32", "fp16", "int8-dynamic", "int8-static"]
    local_host("gcp-n2-standard-4")  # no bf16 compute
    assert default_space(["m"], hardware=["local"], cores=1).precisions["tiny"] == ["fp32"]
    with pytest.raises(HardwareError, match="bf16 is not supported by the tiny backend on "
                                            "this hardware"):
        validate(digits, Configuration.parse({"backend": "tiny", "precision": "bf16"}))


def test_a_broken_plugin_is_reported_not_fatal(plugin_site, capsys):
    _install(plugin_site, "podium-broken", {"broken": "no_such_module:Nope",
                                            "misnamed": "tiny_backend:TinyBackend",
                                            "ort": "tiny_backend:TinyBackend"})
    registry.refresh()
    with pytest.warns(BackendPluginWarning) as caught:
        names = backend_names()
    assert names == ALL
    assert {str(w.message).split("'")[1] for w in caught} == {"broken", "misnamed", "ort"}
    assert get_backend("ort").__class__.__name__ == "OrtBackend"  # a plugin cannot shadow it
    with pytest.raises(ConfigError, match=r"'broken' .*podium-broken 0\.1.*ModuleNotFoundError"):
        get_backend("broken")
    with pytest.raises(ConfigError, match=rf"unknown backend 'nope' \(valid: {', '.join(ALL)}\)"):
        get_backend("nope")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the listing shows them, without warning again
        assert main(["backends", "list"]) == 0
    out, err = capsys.readouterr()
    assert "tiny (podium-tiny 0.1)" in out and "tiny_mode: a, b" in out
    assert "misnamed" in err and "registered as 'misnamed' but its name is 'tiny'" in err
    assert "ort (podium-broken 0.1, tiny_backend:TinyBackend): cannot be used: the name is " \
           "taken by built-in" in " ".join(err.split())


def test_optimize_searches_the_plugin_in_its_workers(plugin_site, tmp_path):
    """A whole search in a fresh process, its own Ray: the trials ran on the plugin, in
    worker processes that found it only through PYTHONPATH, and sampled its option."""
    out = tmp_path / "result.json"
    code = ("import json, sys\n"
            "from tests.conftest import FAST_PROTOCOL\n"
            "from tuner.search.optimize import optimize\n"
            "r = optimize('digits', ['latency_p90_ms'], trials=3, seed=0, study='tiny',\n"
            f"             storage='sqlite:///{tmp_path / 'study.db'}', warm_start=False,\n"
            "             space={'backend': ['tiny'], 'precision': 'fp32', 'threads': 1,\n"
            "                    'batch': 1,\n"
            "                    'variant': 'mlp-64'}, protocol=FAST_PROTOCOL)\n"
            f"r.to_json({str(out)!r})\n")
    root = Path(__file__).resolve().parents[1]
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(plugin_site), str(root)])}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(out.read_text())
    assert record["baseline"]["config"]["backend"] == "ort"  # the ORT default, as always
    trials = record["trials"]
    # The space is two points (tiny_mode a and b): both measured, then the search ends.
    assert [t["config"]["backend"] for t in trials] == ["tiny", "tiny"], trials
    assert all(t["state"] == "complete" and t["metrics"]["latency_p90_ms"] > 0
               for t in trials)
    assert {t["config"]["tiny_mode"] for t in trials} == {"a", "b"}
    assert trials[0]["packages"]["onnxruntime"] != "missing"


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in ALL])
def test_every_registered_backend_passes_the_conformance_suite(plugin_site, tmp_path, name):
    assert backend_names() == ALL
    check_backend(name, workdir=tmp_path)

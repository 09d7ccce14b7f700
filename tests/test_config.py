from __future__ import annotations

import pytest

from tuner.config import Configuration, parse_assignments
from tuner.errors import ConfigError


def test_defaults_fill_per_backend():
    config = Configuration.parse({"precision": "int8-static"}).normalized()
    assert config.calibration == "minmax"
    assert config.per_channel is False
    assert config.ort_graph_optimization == "all"
    assert config.tvm_opt_level is None
    tvm = Configuration.parse({"backend": "tvm"}).normalized()
    assert tvm.tvm_opt_level == 3 and tvm.tvm_tuning_trials == 0
    assert tvm.ort_graph_optimization is None


def test_strings_from_the_cli_are_parsed():
    config = Configuration.parse(parse_assignments(["batch=4", "threads=2", "backend=tvm"]))
    assert (config.batch, config.threads, config.backend) == (4, 2, "tvm")


@pytest.mark.parametrize(("values", "fragment"), [
    ({"foo": 1}, "unknown key"),
    ({"precision": "int4"}, "precision"),
    ({"backend": "tvm", "precision": "int8-dynamic"}, "ort backend only"),
    ({"calibration": "minmax"}, "int8-static only"),
    ({"precision": "int8-dynamic", "calibration": "entropy"}, "int8-static only"),
    ({"per_channel": True}, "int8 precisions only"),
    ({"backend": "tvm", "ort_graph_optimization": "all"}, "ort backend only"),
    ({"tvm_opt_level": 2}, "tvm backend only"),
    ({"ort_execution_mode": "parallel", "threads": 1}, "threads >= 2"),
    ({"threads": 0}, "threads"),
    ({"batch": "many"}, "batch"),
])
def test_invalid_configurations_say_why(values, fragment):
    with pytest.raises(ConfigError) as error:
        Configuration.parse(values)
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)


def test_assignments_reject_unknown_keys_and_malformed_pairs():
    with pytest.raises(ConfigError, match="unknown configuration key 'speed'"):
        parse_assignments(["speed=fast"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignments(["threads"])


def test_digest_is_stable_across_spellings():
    a = Configuration.parse({"precision": "int8-static"})
    b = Configuration.parse({"precision": "int8-static", "calibration": "minmax",
                             "per_channel": False})
    assert a.digest() == b.digest()
    assert a.digest() != Configuration.parse({"precision": "int8-dynamic"}).digest()


def test_build_key_ignores_load_time_options():
    one = Configuration.parse({"threads": 1}).normalized()
    two = Configuration.parse({"threads": 2, "ort_graph_optimization": "basic"}).normalized()
    assert one.build_key() == two.build_key()

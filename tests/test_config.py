from __future__ import annotations

import pytest

from tuner.errors import ConfigError
from tuner.trial.config import Configuration, parse_assignments


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
    ({"int8_keep_fp32": 2}, "int8 precisions only"),
    ({"int8_op_types": "conv-matmul"}, "int8 precisions only"),
    ({"backend": "tvm", "reduce_range": True}, "ort backend only"),
    ({"precision": "int8-dynamic", "quant_format": "qoperator"}, "int8-static only"),
    ({"precision": "int8-dynamic", "activation_symmetric": True}, "int8-static only"),
    ({"precision": "int8-dynamic", "calibration_rows": 32}, "int8-static only"),
    ({"precision": "int8-static", "int8_keep_fp32": -1}, "int8_keep_fp32"),
    ({"precision": "int8-static", "int8_op_types": "conv"}, "int8_op_types"),
    ({"precision": "int8-static", "quant_format": "qdq2"}, "quant_format"),
    ({"precision": "int8-static", "calibration_rows": 0}, "calibration_rows"),
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


def test_mixed_precision_defaults_keep_the_old_int8():
    static = Configuration.parse({"precision": "int8-static"}).normalized()
    assert (static.int8_keep_fp32, static.int8_op_types, static.quant_format) == (0, "all", "qdq")
    assert (static.activation_symmetric, static.reduce_range, static.calibration_rows) == (
        False, False, 128)
    dynamic = Configuration.parse({"precision": "int8-dynamic"}).normalized()
    assert dynamic.int8_keep_fp32 == 0 and dynamic.quant_format is None
    assert Configuration.parse({}).normalized().int8_op_types is None


@pytest.mark.parametrize("change", [{"int8_keep_fp32": 2}, {"int8_op_types": "matmul"},
                                    {"quant_format": "qoperator"}, {"reduce_range": True},
                                    {"activation_symmetric": True}, {"calibration_rows": 32}])
def test_mixed_precision_fields_change_the_build_key(change):
    base = Configuration.parse({"precision": "int8-static"}).normalized()
    assert base.with_updates(**change).normalized().build_key() != base.build_key()


def test_space_searches_the_cut_and_op_types_under_int8_only():
    from tuner.search.space import Space

    space = Space(variants=["m"], backends=["ort"]).restrict({"precision": ["fp32",
                                                                           "int8-static"]})
    configs = space.configurations()
    int8 = [c for c in configs if c.precision == "int8-static"]
    assert {c.int8_keep_fp32 for c in int8} == {0, 2, 8}
    assert {c.int8_op_types for c in int8} == {"all", "conv-matmul"}
    assert all(c.int8_keep_fp32 is None for c in configs if c.precision == "fp32")
    assert all(space.params_for(c) is not None for c in configs)
    narrowed = space.restrict({"int8_keep_fp32": 4, "int8_op_types": "matmul"})
    assert {(c.int8_keep_fp32, c.int8_op_types) for c in narrowed.configurations()
            if c.precision == "int8-static"} == {(4, "matmul")}

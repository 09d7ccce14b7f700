"""Hardware profiles: shipped TOML files, validation, local detection and TVM targets."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tuner import hardware
from tuner.errors import HardwareError

CLOUD = ["aws-c7a.large", "aws-c7i.large", "aws-g5.xlarge", "aws-m7i.xlarge",
         "gcp-n2-standard-4"]

VALID = """\
name = "{name}"
description = "a test box"
cores = 2
isa = ["sse4_2", "avx", "avx2"]
ort_providers = ["CPUExecutionProvider"]
[tvm_target]
kind = "llvm"
mcpu = "haswell"
num-cores = 2
[price]
usd_per_hour = 0.1
source = "test"
date = "2026-11-01"
[power]
idle_w = 2.0
tdp_w = 10.0
source = "estimate: test"
"""


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """An empty $PODIUM_HARDWARE_PROFILES folder."""
    monkeypatch.setenv(hardware.PROFILES_ENV, str(tmp_path))
    return tmp_path


def write(folder, name, text):
    (folder / f"{name}.toml").write_text(text, encoding="utf-8")


def test_import_does_not_pull_tvm_or_ray():
    code = "import sys, tuner.hardware; print('tvm' in sys.modules or 'ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_names_include_shipped_profiles_and_local():
    names = hardware.profile_names()
    assert names == sorted(names)
    assert set(CLOUD) | {"local"} <= set(names)


@pytest.mark.parametrize("name", CLOUD)
def test_shipped_profile_loads_and_tvm_accepts_it(name):
    profile = hardware.load_profile(name)
    assert profile.name == name and profile.ray_resource == f"hw:{name}"
    assert profile.cores >= 1 and profile.isa and profile.ort_providers
    assert profile.price is not None and profile.price.usd_per_hour > 0
    assert profile.power.source.startswith("estimate:")
    assert 0 <= profile.power.idle_w <= profile.power.tdp_w
    target = hardware.check_tvm_target(profile)
    assert target.kind.name == profile.tvm_target["kind"]
    json.dumps(profile.as_dict())


def test_gpu_profile_has_cuda_target_with_llvm_host():
    profile = hardware.load_profile("aws-g5.xlarge")
    assert profile.accelerator == "NVIDIA A10G"
    assert profile.ort_providers[0] == "CUDAExecutionProvider"
    target = hardware.check_tvm_target(profile)
    assert str(target.attrs["arch"]) == "sm_86"
    assert target.host is not None and target.host.kind.name == "llvm"


@pytest.mark.host_sensitive
def test_local_detection():
    local = hardware.detect_local()
    assert local.name == "local" and local.detected and local.cores >= 1
    assert set(local.isa) <= set(hardware.ISA_FLAGS)
    assert local.tvm_target == {"kind": "llvm", "mcpu": local.tvm_target["mcpu"],
                                "num-cores": local.cores}
    assert local.price is not None and local.price.source.startswith("estimate:")
    assert local.power.source.startswith("estimate:")
    assert hardware.load_profile("local") == local
    hardware.check_tvm_target(local)  # also checks LLVM knows the chosen mcpu
    json.dumps(local.as_dict())
    host = hardware.local_host()
    reference = "aws-c7a.large" if host.vendor == "AuthenticAMD" else "aws-c7i.large"
    assert local.price.source.startswith(f"estimate: {reference} on-demand")
    assert ("simulated" in local.description) == bool(host.simulated)


@pytest.mark.host_sensitive
def test_local_price_env_override(monkeypatch):
    monkeypatch.setenv(hardware.LOCAL_PRICE_ENV, "0.5")
    price = hardware.detect_local().price
    assert price is not None and price.usd_per_hour == 0.5
    assert price.source == "user: PODIUM_LOCAL_PRICE_PER_HOUR"
    for bad in ("cheap", "-1", "nan"):
        monkeypatch.setenv(hardware.LOCAL_PRICE_ENV, bad)
        with pytest.raises(HardwareError, match=hardware.LOCAL_PRICE_ENV):
            hardware.detect_local()


def test_unknown_profile_lists_valid_names():
    with pytest.raises(HardwareError, match="unknown hardware profile 'nope'") as info:
        hardware.load_profile("nope")
    assert "aws-c7i.large" in str(info.value) and "local" in str(info.value)


def test_user_profile_is_added(user_dir):
    write(user_dir, "my-box", VALID.format(name="my-box"))
    assert "my-box" in hardware.profile_names()
    assert hardware.load_profile("my-box").price.usd_per_hour == 0.1


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda t: t.replace("\ncores = 2", "\ncores = = 2"), "line 3"),
    (lambda t: t.replace("\ncores = 2", ""), "cores: Field required"),
    (lambda t: t.replace("\ncores = 2", '\ncores = "two"'), "cores: Input should be"),
    (lambda t: t.replace("idle_w = 2.0", "idle_w = 20.0"), "idle_w 20.0 exceeds tdp_w 10.0"),
    (lambda t: t.replace("usd_per_hour = 0.1", "usd_per_hour = -0.1"), "price.usd_per_hour"),
    (lambda t: t.replace('name = "bad"', 'name = "other"'), "does not match the file name"),
    (lambda t: t.replace('"avx2"]', '"avx3"]'), "isa.2"),
    (lambda t: t + "colour = 'red'\n", "colour: Extra inputs are not permitted"),
    (lambda t: t.replace('kind = "llvm"', 'kinds = "llvm"'), "tvm_target: needs a string"),
])
def test_malformed_profile_is_one_line_error(user_dir, edit, problem):
    write(user_dir, "bad", edit(VALID.format(name="bad")))
    with pytest.raises(HardwareError) as info:
        hardware.load_profile("bad")
    message = str(info.value)
    assert "\n" not in message and "bad.toml" in message and problem in message


@pytest.mark.parametrize(("target", "problem"), [
    ('kind = "llvm"\nmcpu = "pentium9000"', "does not know mcpu 'pentium9000'"),
    ('kind = "no-such-kind"', "TVM rejects tvm_target"),
    ('kind = "llvm"\nmcpu = 3', "TVM rejects tvm_target"),
])
def test_tvm_target_is_checked_lazily(user_dir, target, problem):
    text = VALID.format(name="odd").replace('kind = "llvm"\nmcpu = "haswell"', target)
    write(user_dir, "odd", text)
    profile = hardware.load_profile("odd")  # loads: TVM is not consulted here
    with pytest.raises(HardwareError, match=problem) as info:
        hardware.check_tvm_target(profile)
    assert "\n" not in str(info.value)


def test_local_name_is_reserved(user_dir):
    write(user_dir, "local", VALID.format(name="local"))
    with pytest.raises(HardwareError, match="reserved"):
        hardware.profile_names()


@pytest.mark.host_sensitive
def test_fingerprint_is_stable_and_tells_profiles_apart():
    local, cloud = hardware.detect_local(), hardware.load_profile("aws-c7i.large")
    assert hardware.fingerprint(local) == hardware.fingerprint(hardware.detect_local())
    assert hardware.fingerprint(local) != hardware.fingerprint(cloud)
    assert "node" in hardware.fingerprint(local) and "node" not in hardware.fingerprint(cloud)
    assert {"cpu_model", "cores", "isa", "caches", "machine"} <= set(hardware.fingerprint(cloud))
    json.dumps(hardware.fingerprint(local))


def test_tvm_target_for_features():
    intel, amd = hardware.load_profile("aws-c7i.large"), hardware.load_profile("aws-c7a.large")
    assert hardware.tvm_target_for(intel, "native") == intel.tvm_target
    assert hardware.tvm_target_for(intel, "avx2") == {"kind": "llvm", "mcpu": "haswell",
                                                      "num-cores": 2}
    assert hardware.tvm_target_for(amd, "avx2")["mcpu"] == "znver2"
    assert hardware.tvm_target_for(amd, "generic") == {"kind": "llvm", "mcpu": "x86-64",
                                                       "num-cores": 2}
    gpu = hardware.tvm_target_for(hardware.load_profile("aws-g5.xlarge"), "generic")
    assert gpu["kind"] == "cuda" and gpu["host"]["mcpu"] == "x86-64"
    assert intel.tvm_target["mcpu"] == "sapphirerapids"  # the profile is not mutated
    with pytest.raises(HardwareError, match="valid: native, avx2, generic"):
        hardware.tvm_target_for(intel, "avx9")


def test_avx2_needs_avx2(user_dir):
    text = VALID.format(name="old").replace('isa = ["sse4_2", "avx", "avx2"]', 'isa = ["avx"]')
    write(user_dir, "old", text)
    with pytest.raises(HardwareError, match="has no avx2"):
        hardware.tvm_target_for(hardware.load_profile("old"), "avx2")


@pytest.mark.host_sensitive
@pytest.mark.parametrize(("name", "vendor", "mcpu", "price_from"), [
    ("aws-c7a.large", "AuthenticAMD", "znver4", "aws-c7a.large"),
    ("aws-c7i.large", "GenuineIntel", "sapphirerapids", "aws-c7i.large"),
    ("gcp-n2-standard-4", "GenuineIntel", "cascadelake", "aws-c7i.large"),
    ("aws-g5.xlarge", "AuthenticAMD", "znver2", "aws-c7a.large"),  # its CPU host
])
def test_a_simulated_local_host_follows_its_profile(local_host, name, vendor, mcpu, price_from):
    profile = hardware.load_profile(name)
    real_cores = local_host(None).cores
    host = local_host(name)
    assert (host.vendor, host.mcpu, host.simulated) == (vendor, mcpu, name)
    assert host.model == profile.description and host.caches == {}
    local = hardware.detect_local()
    assert local.name == "local" and local.detected and set(local.isa) == set(profile.isa)
    # Trials still run here: never more cores than this machine really has.
    assert local.cores == min(profile.cores, real_cores)
    assert local.tvm_target == {"kind": "llvm", "mcpu": mcpu, "num-cores": local.cores}
    assert "simulated" in local.description and name in local.description
    assert local.price.source.startswith(f"estimate: {price_from} on-demand")
    assert hardware.load_profile("local") == local
    printed = hardware.fingerprint(local)
    assert printed["simulated"] == name and printed["cpu_model"] == profile.description
    assert hardware.fingerprint(profile)["simulated"] == name  # its host facts are simulated too


@pytest.mark.host_sensitive
def test_a_simulated_record_never_passes_for_a_real_one(local_host):
    from tuner.knowledge.fingerprint import hardware_hash

    local_host(None)
    real = hardware.fingerprint(hardware.detect_local())
    local_host("aws-c7a.large")
    simulated = hardware.fingerprint(hardware.detect_local())
    assert "simulated" not in real and hardware_hash(simulated) != hardware_hash(real)


@pytest.mark.host_sensitive
@pytest.mark.parametrize("name", ["cray-1", "local"])
def test_an_unknown_simulated_profile_is_a_one_line_error(local_host, name):
    with pytest.raises(HardwareError) as info:
        local_host(name)
    message = str(info.value)
    assert "\n" not in message and f"PODIUM_LOCAL_PROFILE={name!r}" in message
    assert "valid: aws-c7a.large, aws-c7i.large" in message and "local," not in message
    with pytest.raises(HardwareError, match="PODIUM_LOCAL_PROFILE"):
        hardware.load_profile("local")


@pytest.mark.host_sensitive
def test_a_simulated_host_is_forgotten_when_detection_is_reset(local_host, monkeypatch):
    local_host("aws-c7i.large")
    monkeypatch.setenv(hardware.LOCAL_PROFILE_ENV, "aws-c7a.large")
    assert hardware.detect_local().tvm_target["mcpu"] == "sapphirerapids"  # cached
    hardware.reset_detection()
    assert hardware.local_host().simulated == "aws-c7a.large"
    assert hardware.detect_local().tvm_target["mcpu"] == "znver4"
    monkeypatch.delenv(hardware.LOCAL_PROFILE_ENV)
    hardware.reset_detection()
    assert not hardware.local_host().simulated
    assert "simulated" not in hardware.fingerprint(hardware.detect_local())


@pytest.mark.host_sensitive
def test_the_cli_shows_a_simulated_local_host(local_host, capsys):
    from tuner.cli import main

    local_host("aws-c7i.large")
    assert main(["hardware", "show", "local"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["tvm_target"]["mcpu"] == "sapphirerapids" and "amx_tile" in shown["isa"]
    assert shown["fingerprint"]["simulated"] == "aws-c7i.large"
    with pytest.raises(HardwareError):
        local_host("cray-1")
    assert main(["hardware", "show", "local"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "PODIUM_LOCAL_PROFILE='cray-1'" in lines[0]


@pytest.mark.host_sensitive
def test_native_tvm_for_a_simulated_host_is_refused_where_this_machine_lacks_its_isa(
        local_host, digits):
    """Measurements run here, so code compiled for a simulated host's ISA must run here too;
    the expectation comes from this machine's real flags."""
    from tuner.trial.config import Configuration
    from tuner.trial.run import validate

    local_host("aws-c7i.large")
    lacking = hardware.missing_here(hardware.load_profile("local").isa)
    native = Configuration.parse({"backend": "tvm"})
    if lacking:
        with pytest.raises(HardwareError, match="which this machine lacks"):
            validate(digits, native)
    else:
        validate(digits, native)
    validate(digits, Configuration.parse({"backend": "tvm", "tvm_features": "generic"}))

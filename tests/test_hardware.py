"""rnnjax.fast_bfloat16 / matmul_dtype: the detection rule per platform, the CPU
flags parser, and the real device."""

import jax
import jax.numpy as jnp
import pytest

import rnnjax
from rnnjax import hardware

X86 = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile amx_bf16
bugs\t\t: spectre_v1

processor\t: 1
flags\t\t: fpu sse2
"""
X86_OLD = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n"


def test_cpu_flags_parses_the_first_cpu():
    assert {"amx_bf16", "avx512_bf16", "fpu"} <= hardware.cpu_flags(X86)
    assert "amx_bf16" not in hardware.cpu_flags(X86_OLD)
    assert hardware.cpu_flags(ARM) == {"fp", "asimd", "bf16", "i8mm"}
    assert hardware.cpu_flags("") == frozenset()


@pytest.mark.parametrize(
    "cpuinfo, fast",
    [(X86, True), (X86_OLD, False), (ARM, False), ("", False)],
)
def test_cpu_rule_needs_amx_or_avx512_bf16(monkeypatch, cpuinfo, fast):
    parse = hardware.cpu_flags
    monkeypatch.setattr(hardware, "cpu_flags", lambda: parse(cpuinfo))
    assert hardware.native_bfloat16("cpu") is fast


@pytest.mark.parametrize(
    "platform, capability, fast",
    [
        ("tpu", None, True),
        ("gpu", "9.0", True),
        ("gpu", "8.0", True),
        ("gpu", "7.5", False),  # Turing: float16 tensor cores, no bfloat16
        ("gpu", None, False),  # ROCm and others: not assumed
        ("metal", None, False),
    ],
)
def test_accelerator_rule(platform, capability, fast):
    assert hardware.native_bfloat16(platform, capability) is fast


def test_the_real_device_follows_the_rule():
    device = jax.devices()[0]
    want = hardware.native_bfloat16(
        device.platform, getattr(device, "compute_capability", None)
    )
    assert rnnjax.fast_bfloat16() is want
    assert rnnjax.fast_bfloat16(device) is want
    assert rnnjax.matmul_dtype() == (jnp.bfloat16 if want else jnp.float32)


def test_a_missing_cpuinfo_means_no_flags(monkeypatch, tmp_path):
    monkeypatch.setattr(hardware, "_CPUINFO", tmp_path / "absent")
    assert hardware.cpu_flags() == frozenset()


def test_bad_device_is_rejected():
    with pytest.raises(TypeError, match=r"device: expected a jax.Device .* got str"):
        rnnjax.fast_bfloat16("cpu")

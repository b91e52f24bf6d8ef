"""rnnjax.hardware: fast_bfloat16 / matmul_dtype (the detection rule per platform,
the CPU flags parser, the real device) and tune_host_allocator (argument checks, and
its effect on page faults, in a subprocess: the setting is process-wide).
"""

import platform
import subprocess
import sys
import textwrap

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
    assert rnnjax.hardware.fast_bfloat16() is want
    assert rnnjax.hardware.fast_bfloat16(device) is want
    assert rnnjax.hardware.matmul_dtype() == (jnp.bfloat16 if want else jnp.float32)


def test_a_missing_cpuinfo_means_no_flags(monkeypatch, tmp_path):
    monkeypatch.setattr(hardware, "_CPUINFO", tmp_path / "absent")
    assert hardware.cpu_flags() == frozenset()


def test_bad_device_is_rejected():
    with pytest.raises(TypeError, match=r"device: expected a jax.Device .* got str"):
        rnnjax.hardware.fast_bfloat16("cpu")


_GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Allocates, touches and frees a 48 MiB block (above glibc's largest dynamic mmap
# threshold, 32 MiB) five times, before and after the call; prints the minor page
# faults of each round. malloc through ctypes, not NumPy: NumPy asks for huge
# pages, which would hide the 4 KiB faults this is about.
_SCRIPT = textwrap.dedent(
    """
    import ctypes, resource
    import rnnjax.hardware

    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    SIZE = 48 << 20

    def faults(rounds=5):
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(rounds):
            p = libc.malloc(SIZE)
            ctypes.memset(p, 1, SIZE)
            libc.free(p)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

    before = faults()
    applied = rnnjax.hardware.tune_host_allocator(single_arena=True)
    faults(1)  # the first block after the call grows the heap once
    print(before, applied, faults())
    """
)


@pytest.mark.skipif(not _GLIBC, reason="glibc only")
def test_freed_blocks_are_reused_without_page_faults():
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True
    ).stdout.split()
    before, applied, after = int(out[0]), out[1], int(out[2])
    assert applied == "True"
    assert before > 5 * (48 << 20) // 4096 // 2  # at least half the pages faulted
    assert after < before // 20


@pytest.mark.skipif(_GLIBC, reason="non-glibc platforms only")
def test_other_c_libraries_report_nothing_applied():
    assert rnnjax.hardware.tune_host_allocator() is False


@pytest.mark.parametrize(
    "threshold, error, match",
    [
        (1000, ValueError, "threshold: expected bytes between 1 MiB .* got 1000"),
        (2**31, ValueError, "got 2147483648"),
        (1.5e9, TypeError, "threshold: expected an int .* got float"),
        (True, TypeError, "got bool"),
    ],
)
def test_bad_threshold_is_rejected(threshold, error, match):
    with pytest.raises(error, match=match):
        rnnjax.hardware.tune_host_allocator(threshold=threshold)


def test_bad_single_arena_is_rejected():
    with pytest.raises(TypeError, match="single_arena: expected a bool, got int"):
        rnnjax.hardware.tune_host_allocator(single_arena=1)

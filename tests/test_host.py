"""rnnjax.tune_host_allocator: argument checks, and its effect on page faults
(in a subprocess: the setting is process-wide)."""

import platform
import subprocess
import sys
import textwrap

import pytest

import rnnjax

_GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Allocates, touches and frees a 48 MiB block (above glibc's largest dynamic mmap
# threshold, 32 MiB) five times, before and after the call; prints the minor page
# faults of each round. malloc through ctypes, not NumPy: NumPy asks for huge
# pages, which would hide the 4 KiB faults this is about.
_SCRIPT = textwrap.dedent(
    """
    import ctypes, resource
    import rnnjax

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
    applied = rnnjax.tune_host_allocator(single_arena=True)
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
    assert rnnjax.tune_host_allocator() is False


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
        rnnjax.tune_host_allocator(threshold=threshold)


def test_bad_single_arena_is_rejected():
    with pytest.raises(TypeError, match="single_arena: expected a bool, got int"):
        rnnjax.tune_host_allocator(single_arena=1)

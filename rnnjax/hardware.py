"""Host and hardware helpers: what the hardware runs fast, detected at run time
(never assumed), and host (CPU) process settings that make XLA:CPU faster. Nothing
here runs on import.

## bfloat16

bfloat16 matrix products pay only where the matrix units take bfloat16 natively:
TPUs, NVIDIA GPUs from Ampere (compute capability 8.0) on, and CPUs with AMX-BF16
or AVX-512 BF16. Elsewhere XLA emulates them in float32 and adds conversions,
so they are slower than float32. `matmul_dtype` gives the compute dtype to
pass as a cell's ``dtype`` (parameters, carry and gate arithmetic stay float32):

    cell = rnnjax.lstm(256, dtype=rnnjax.hardware.matmul_dtype())

Where the CPU has AMX, bfloat16 products make the LSTM forward and backward
faster; the measured numbers, with their CPU and command, are in
``benchmarks/RESULTS.md``.

## The host allocator

XLA:CPU allocates a fresh temporary arena for every call of a compiled function
and frees it afterwards. glibc serves blocks above its mmap threshold (at most 32
MiB by default) with ``mmap`` and returns them to the kernel on ``free``, so every
call faults its arena in again, one 4 KiB page at a time: a forward+backward LSTM
pass at B=32, T=128, H=256 (a 76 MiB arena) takes about 16,000 page faults a call.
Raising the mmap and trim thresholds keeps freed blocks in the heap for the next
call, and one malloc arena shared by every thread (``single_arena=True``) does the
same for computations dispatched from other threads, such as the ``rnnjax``
command's training step. The gains, measured with their CPU and command, are in
``benchmarks/RESULTS.md``.

The price is the usual one of a cache: memory a computation frees stays with the
process (reused by the next computation) instead of going back to the system, so
the resident size does not shrink after a peak. That is why this is a call you make,
not a default of ``import rnnjax``; the ``rnnjax`` command makes it.
"""

from __future__ import annotations

import ctypes
import pathlib
import platform

import jax
import jax.numpy as jnp

__all__ = ["fast_bfloat16", "matmul_dtype", "tune_host_allocator"]

#: x86 CPU feature flags (Linux /proc/cpuinfo names) with native bfloat16
#: products. ARM's ``bf16`` is left out: XLA:CPU's use of it is unverified here.
BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
_CPUINFO = pathlib.Path("/proc/cpuinfo")


def fast_bfloat16(device=None) -> bool:
    """Whether ``device`` (default: JAX's first device) multiplies bfloat16
    matrices natively: a TPU; a CUDA GPU of compute capability 8.0 or more; a CPU
    whose flags include ``amx_bf16`` or ``avx512_bf16`` (read from
    ``/proc/cpuinfo``; False where that file does not exist)."""
    device = jax.devices()[0] if device is None else device
    if not isinstance(device, jax.Device):
        raise TypeError(
            f"device: expected a jax.Device (e.g. jax.devices()[0]), got "
            f"{type(device).__name__}"
        )
    return native_bfloat16(device.platform, getattr(device, "compute_capability", None))


def native_bfloat16(platform: str, compute_capability=None) -> bool:
    """The rule of `fast_bfloat16` for a platform name (``"cpu"``,
    ``"gpu"``, ``"tpu"``) and, for GPUs, a compute capability such as ``"9.0"``."""
    if platform == "tpu":
        return True
    if platform == "gpu":
        return compute_capability is not None and float(compute_capability) >= 8.0
    if platform == "cpu":
        return bool(cpu_flags() & BF16_CPU_FLAGS)
    return False


def matmul_dtype(device=None):
    """``jnp.bfloat16`` where `fast_bfloat16` holds for ``device``, else
    ``jnp.float32``: the compute dtype for a cell's matrix products."""
    return jnp.bfloat16 if fast_bfloat16(device) else jnp.float32


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The feature flags of the first CPU in ``cpuinfo`` (the text of
    ``/proc/cpuinfo``, read when None); empty when there is none."""
    if cpuinfo is None:
        try:
            cpuinfo = _CPUINFO.read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, ARM
            return frozenset(value.split())
    return frozenset()


# ------------------------------------------------------------------ host allocator

_M_TRIM_THRESHOLD = -1  # from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_INT_MAX = 2**31 - 1  # mallopt takes a C int


def tune_host_allocator(
    *, threshold: int = 1 << 30, single_arena: bool = False
) -> bool:
    """Keeps freed host memory in the process for reuse (Linux with glibc).

    Sets glibc's ``M_MMAP_THRESHOLD`` to ``threshold`` bytes (blocks up to that
    size come from the heap rather than from fresh ``mmap`` calls) and
    ``M_TRIM_THRESHOLD`` to its maximum (the heap is not shrunk), process-wide.
    Call it once, before the first JAX computation.

    Args:
      threshold: the largest block, in bytes, that comes from the heap; between
        1 MiB and 2**31 - 1.
      single_arena: also set ``M_ARENA_MAX`` to 1, so that every thread allocates
        from the main heap, the only one that can hold blocks above 64 MiB (a
        thread's own arena maps those afresh on every call, whatever the
        threshold). It takes effect for threads that have not allocated yet.
        It helps where a computation dispatched from another thread needs a
        large arena (the ``rnnjax`` command's training step) and hurts where
        many threads allocate small blocks at once (Flax's ``LSTMCell``
        forward+backward was slower with it; ``benchmarks/RESULTS.md``);
        measure before keeping it.

    Returns:
      True when the settings were applied; False when the C library is not glibc
      (macOS, Windows, musl), where nothing changes.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int):
        raise TypeError(
            f"threshold: expected an int (bytes), got {type(threshold).__name__}"
        )
    if not 1 << 20 <= threshold <= _INT_MAX:
        raise ValueError(
            f"threshold: expected bytes between 1 MiB (1048576) and 2**31 - 1, "
            f"got {threshold}"
        )
    if not isinstance(single_arena, bool):
        raise TypeError(
            f"single_arena: expected a bool, got {type(single_arena).__name__}"
        )
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    settings = [(_M_MMAP_THRESHOLD, threshold), (_M_TRIM_THRESHOLD, _INT_MAX)]
    if single_arena:
        settings.append((_M_ARENA_MAX, 1))
    return all([mallopt(option, value) == 1 for option, value in settings])


def _glibc_mallopt():
    """glibc's ``mallopt(int, int) -> int``, or None on any other C library."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt

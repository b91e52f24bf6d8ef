"""Host (CPU) process settings that make XLA:CPU faster; nothing here runs on import.

XLA:CPU allocates a fresh temporary arena for every call of a compiled function
and frees it afterwards. glibc serves blocks above its mmap threshold (at most 32
MiB by default) with ``mmap`` and returns them to the kernel on ``free``, so every
call faults its arena in again, one 4 KiB page at a time (about 0.7 us a page
here). A forward+backward LSTM pass at B=32, T=128, H=256 (a 76 MiB arena) took
16,000 page faults and 30 ms of system time per call. Raising the mmap and trim
thresholds keeps freed blocks in the heap for the next call: that pass then ran in
70 ms instead of 79 (Flax's ``LSTMCell``: 91 against 96). With one malloc arena
shared by every thread as well (``single_arena=True``), the ``rnnjax`` command's
default char-LSTM training ran 12.4 to 13.1 steps/s instead of 11.3 to 11.7 on a
2-core CPU (see ``benchmarks/RESULTS.md``).

The price is the usual one of a cache: memory a computation frees stays with the
process (reused by the next computation) instead of going back to the system, so
the resident size does not shrink after a peak. That is why this is a call you make,
not a default of ``import rnnjax``; the ``rnnjax`` command makes it.
"""

from __future__ import annotations

import ctypes
import platform

__all__ = ["tune_host_allocator"]

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
        forward+backward ran 96 -> 127 ms with it); measure before keeping it.

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

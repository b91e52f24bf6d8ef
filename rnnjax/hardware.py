"""What the hardware runs fast, detected at run time (never assumed).

bfloat16 matrix products pay only where the matrix units take bfloat16 natively:
TPUs, NVIDIA GPUs from Ampere (compute capability 8.0) on, and CPUs with AMX-BF16
or AVX-512 BF16. Elsewhere XLA emulates them in float32 and adds conversions,
so they are slower than float32. :func:`matmul_dtype` gives the compute dtype to
pass as a cell's ``dtype`` (parameters, carry and gate arithmetic stay float32):

    cell = rnnjax.lstm(256, dtype=rnnjax.matmul_dtype())

On this project's 2-core AMX CPU, bfloat16 took the LSTM forward (B=32, T=128,
I=128, H=256) from 27.0 to 18.7 ms and forward+backward from 81.3 to 74.4 ms
(``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp

__all__ = ["fast_bfloat16", "matmul_dtype"]

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
    """The rule of :func:`fast_bfloat16` for a platform name (``"cpu"``,
    ``"gpu"``, ``"tpu"``) and, for GPUs, a compute capability such as ``"9.0"``."""
    if platform == "tpu":
        return True
    if platform == "gpu":
        return compute_capability is not None and float(compute_capability) >= 8.0
    if platform == "cpu":
        return bool(cpu_flags() & BF16_CPU_FLAGS)
    return False


def matmul_dtype(device=None):
    """``jnp.bfloat16`` where :func:`fast_bfloat16` holds for ``device``, else
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

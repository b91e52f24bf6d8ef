"""Implementations of the recurrence, each next to the reference it must equal.

The contract. Every recurrence is a function:

    recurrence(cell, params, carry0, inputs, *, unroll=1) -> (carry_T, ys)

with ``inputs`` a `StepInputs` (time-major ``zs (T, *B, Z)``, an optional
``bias (Z,)`` added to every step, ``valid`` and ``resets`` booleans ``(T, *B)``,
a ``rec_mask (*B, K)``; absent ones ``None``), ``unroll`` the steps per loop
iteration, ``carry_T`` the carry after the last valid step and ``ys (T, *B, Y)``
the outputs (zero on invalid steps). All of them give the numbers of
``scan_recurrence`` (to float rounding), values and derivatives.

- ``scan``: the plain ``lax.scan`` over ``cell.recur`` (reference; every cell).
- ``fused``: fused-form cells; hand-written derivative (a ``custom_jvp`` with a
  linear tangent scan) with the weight products hoisted out of the time loop;
  faster than ``scan`` forward and backward (``benchmarks/RESULTS.md``).
- ``associative``: cells whose recurrence is linear in the state
  (``LinearRecurrenceCell``: ``min_gru``, ``min_lstm``); a parallel
  ``lax.associative_scan`` over the steps' affine maps, ``O(log T)`` depth
  (``benchmarks/RESULTS.md``).
- ``pallas``: the plain LSTM and the GRU (reset after); Pallas kernels that walk
  time with ``W_h`` on chip, forward and backward (a ``custom_vjp``: reverse mode
  only). GPU (Triton) and TPU (Mosaic) flavours, picked by the backend at trace
  time unless `Pallas` names one; on the CPU they run in Pallas'
  interpreter (slow; for tests). See ``pallas_gpu`` and ``pallas_tpu``.

- ``cudnn``: the plain LSTM through cuDNN (``jax.experimental.rnn``) on a CUDA
  GPU; a whole layer per call from the raw inputs, so `rnnjax.unroll` runs it in
  place of the projection and the recurrence (``rnnjax.kernels.cudnn``).

The choice is a value, ``rnnjax.UnrollOptions(impl=...)``: an `Impl` (or
its string) or a `Pallas` (``"pallas"`` with options); `select`
turns it into the recurrence function.
"""

import functools

import jax

from rnnjax.cells.base import is_fusable
from rnnjax.kernels import cudnn
from rnnjax.kernels.associative import (
    associative_recurrence,
    check_linear,
    has_linear_recurrence,
)
from rnnjax.kernels.fused import fused_recurrence
from rnnjax.kernels.impl import IMPLS, Impl, Pallas, as_impl
from rnnjax.kernels.pallas import check_supported, is_supported, pallas_recurrence
from rnnjax.kernels.scan import StepInputs, scan_recurrence

# Backends where "auto" picks the Pallas kernels: those where benchmarks/gpu.py's
# checks passed on real hardware and pallas beat fused (recorded in
# benchmarks/RESULTS.md). Empty until then: the kernels have only run in Pallas'
# interpreter and been cross-lowered, and a kernel that fails to compile on a real
# GPU must not break every LSTM under the default impl. impl="pallas" opts in.
AUTO_PALLAS_BACKENDS: frozenset[str] = frozenset()


def select(cell, impl):
    """Returns the recurrence function for ``impl`` (an `Impl`, its string
    or a `Pallas`). ``"auto"`` picks the fastest valid one for this cell:
    ``associative`` for cells linear in the state; ``pallas`` for the plain LSTM
    and the GRU on the backends of `AUTO_PALLAS_BACKENDS` (none yet;
    ``fused`` for shapes it cannot hold); ``fused`` for fused-form cells; ``scan``
    otherwise. Raises ValueError naming ``impl`` when the cell cannot run it."""
    impl = as_impl(impl)
    if impl == Impl.CUDNN:
        raise ValueError(
            "impl: 'cudnn' runs whole layers from the raw inputs, not a recurrence "
            "over projected ones: use rnnjax.unroll, a Layer or a Stack"
        )
    if isinstance(impl, Pallas) or impl == Impl.PALLAS:
        options = impl if isinstance(impl, Pallas) else Pallas()
        check_supported(cell)
        return functools.partial(pallas_recurrence, options=options)
    auto = impl == Impl.AUTO
    if impl == Impl.ASSOCIATIVE or (auto and has_linear_recurrence(cell)):
        check_linear(cell)
        return associative_recurrence
    if auto and _accelerator() and is_supported(cell):
        return functools.partial(
            pallas_recurrence, options=Pallas(), fallback=fused_recurrence
        )
    if impl == Impl.SCAN or (auto and not is_fusable(cell)):
        return scan_recurrence
    return fused_recurrence


def _accelerator() -> bool:
    """Whether "auto" may pick Pallas on the default backend (at trace time)."""
    return jax.default_backend() in AUTO_PALLAS_BACKENDS


__all__ = [
    "AUTO_PALLAS_BACKENDS",
    "IMPLS",
    "Impl",
    "Pallas",
    "StepInputs",
    "cudnn",
    "associative_recurrence",
    "fused_recurrence",
    "has_linear_recurrence",
    "pallas_recurrence",
    "scan_recurrence",
    "select",
]

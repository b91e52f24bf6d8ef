"""Implementations of the recurrence, each next to the reference it must equal.

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
  time; on the CPU they run in Pallas' interpreter (slow; for tests). See
  ``pallas_gpu``, ``pallas_tpu`` and :func:`pallas_options`.
"""

import functools

import jax

from rnnjax.cells.base import is_fusable
from rnnjax.kernels import _pallas_common
from rnnjax.kernels._pallas_common import (
    PallasOptions,
    check_supported,
    is_supported,
    pallas_options,
    resolved_options,
)
from rnnjax.kernels.associative import (
    associative_recurrence,
    check_linear,
    has_linear_recurrence,
)
from rnnjax.kernels.fused import fused_recurrence
from rnnjax.kernels.pallas_gpu import GPU
from rnnjax.kernels.pallas_tpu import TPU
from rnnjax.kernels.scan import scan_recurrence

IMPLS = ("auto", "scan", "fused", "associative", "pallas")

# Backends where "auto" picks the Pallas kernels: those where benchmarks/gpu.py's
# checks passed on real hardware and pallas beat fused (recorded in
# benchmarks/RESULTS.md). Empty until then: the kernels have only run in Pallas'
# interpreter and been cross-lowered, and a kernel that fails to compile on a real
# GPU must not break every LSTM under the default impl. impl="pallas" opts in.
AUTO_PALLAS_BACKENDS: frozenset[str] = frozenset()


def pallas_recurrence(
    cell,
    params,
    carry0,
    zs,
    valid=None,
    resets=None,
    rec_mask=None,
    unroll=1,
    bias=None,
    *,
    fallback=None,
):
    """Same contract as :func:`rnnjax.kernels.scan.scan_recurrence`, through the
    Pallas kernels of the flavour that :func:`pallas_options` resolves to (TPU on a
    TPU backend, GPU otherwise). ``fallback`` runs shapes the kernels cannot hold
    (else they raise ValueError)."""
    options = resolved_options()
    return _pallas_common.recurrence(
        TPU if options.flavour == "tpu" else GPU,
        cell,
        params,
        carry0,
        zs,
        valid,
        resets,
        rec_mask,
        unroll,
        bias,
        options=options,
        fallback=fallback,
    )


def select(cell, impl: str):
    """Returns the recurrence function for ``impl`` (``"auto"`` picks the fastest
    valid one for this cell: ``associative`` for cells linear in the state;
    ``pallas`` for the plain LSTM and the GRU on the backends of
    :data:`AUTO_PALLAS_BACKENDS` (none yet; ``fused`` for shapes it cannot hold);
    ``fused`` for fused-form cells; ``scan`` otherwise)."""
    if impl not in IMPLS:
        raise ValueError(f"impl: expected one of {IMPLS}, got {impl!r}")
    if impl == "pallas":
        check_supported(cell)
        return pallas_recurrence
    if impl == "associative" or (impl == "auto" and has_linear_recurrence(cell)):
        check_linear(cell)
        return associative_recurrence
    if impl == "auto" and _accelerator() and is_supported(cell):
        return functools.partial(pallas_recurrence, fallback=fused_recurrence)
    if impl == "scan" or (impl == "auto" and not is_fusable(cell)):
        return scan_recurrence
    return fused_recurrence


def _accelerator() -> bool:
    """Whether "auto" may pick Pallas on the default backend (at trace time)."""
    return jax.default_backend() in AUTO_PALLAS_BACKENDS


__all__ = [
    "AUTO_PALLAS_BACKENDS",
    "IMPLS",
    "PallasOptions",
    "associative_recurrence",
    "fused_recurrence",
    "has_linear_recurrence",
    "pallas_options",
    "pallas_recurrence",
    "scan_recurrence",
    "select",
]

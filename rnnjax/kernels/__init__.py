"""Implementations of the recurrence, each next to the reference it must equal.

- ``scan``: the plain ``lax.scan`` over ``cell.recur`` (reference; every cell).
- ``fused``: fused-form cells; hand-written derivative (a ``custom_jvp`` with a
  linear tangent scan) with the weight products hoisted out of the time loop;
  faster than ``scan`` forward and backward (``benchmarks/RESULTS.md``).
- ``associative``: cells whose recurrence is linear in the state
  (``linear_recurrence``: ``min_gru``, ``min_lstm``); a parallel
  ``lax.associative_scan`` over the steps' affine maps, ``O(log T)`` depth
  (``benchmarks/RESULTS.md``).
"""

from rnnjax.cells.base import is_fusable
from rnnjax.kernels.associative import (
    associative_recurrence,
    check_linear,
    has_linear_recurrence,
)
from rnnjax.kernels.fused import fused_recurrence
from rnnjax.kernels.scan import scan_recurrence

IMPLS = ("auto", "scan", "fused", "associative")


def select(cell, impl: str):
    """Returns the recurrence function for ``impl`` (``"auto"`` picks the fastest
    valid one for this cell: ``associative`` for cells linear in the state,
    ``fused`` for fused-form cells, ``scan`` otherwise)."""
    if impl not in IMPLS:
        raise ValueError(f"impl: expected one of {IMPLS}, got {impl!r}")
    if impl == "associative" or (impl == "auto" and has_linear_recurrence(cell)):
        check_linear(cell)
        return associative_recurrence
    if impl == "scan" or (impl == "auto" and not is_fusable(cell)):
        return scan_recurrence
    return fused_recurrence


__all__ = [
    "IMPLS",
    "associative_recurrence",
    "fused_recurrence",
    "has_linear_recurrence",
    "scan_recurrence",
    "select",
]

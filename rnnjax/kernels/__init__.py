"""Implementations of the recurrence, each next to the reference it must equal.

- ``scan``: the plain ``lax.scan`` over ``cell.recur`` (reference; every cell).
- ``fused``: fused-form cells; hand-written derivative (a ``custom_jvp`` with a
  linear tangent scan) with the weight products hoisted out of the time loop;
  faster than ``scan`` forward and backward (``benchmarks/RESULTS.md``).
"""

from rnnjax.cells.base import is_fusable
from rnnjax.kernels.fused import fused_recurrence
from rnnjax.kernels.scan import scan_recurrence

IMPLS = ("auto", "scan", "fused")


def select(cell, impl: str):
    """Returns the recurrence function for ``impl`` (``"auto"`` picks the fastest
    valid one for this cell)."""
    if impl not in IMPLS:
        raise ValueError(f"impl: expected one of {IMPLS}, got {impl!r}")
    if impl == "scan" or (impl == "auto" and not is_fusable(cell)):
        return scan_recurrence
    return fused_recurrence


__all__ = ["IMPLS", "fused_recurrence", "scan_recurrence", "select"]

"""Rematerialisation for long sequences: trade recomputation for memory, exactly.

Reverse mode keeps, for every step, what the backward pass needs (the fused kernel
keeps its linearisation coefficients: 6 ``(*B, H)`` arrays a step for the LSTM).
Two ways to keep less (``rnnjax.UnrollOptions(remat=...)``):

- ``"step"``: each step, its input projection included, runs under
  ``jax.checkpoint`` in a plain ``lax.scan``, so reverse mode keeps only the carry
  (``h, c``) of each step (and the inputs ``xs``); the backward pass recomputes each
  step's projection and gates before differentiating it. (Hoisting the projection
  out of the loop would keep ``z_t``, ``4H`` floats a step for the LSTM, twice the
  carry.)
- ``"chunk"``: the sequence is cut into chunks of ``C`` steps (``chunk_size``,
  default ``ceil(sqrt(T))``); a scan over chunks keeps only the carry at each chunk
  boundary (and the inputs ``xs``). The backward pass recomputes one chunk at a time,
  its input projection included, with the fast kernel and its full residuals, so
  peak memory is ``O(T / C)`` carries plus ``O(C)`` steps of residuals. Steps added
  to make ``T`` a multiple of ``C`` are marked invalid, so they leave the carry
  unchanged, and their outputs are cut off.

Both give the numbers of ``remat=None``: the recomputation repeats the same
operations on the same values.
"""

from __future__ import annotations

import math

import jax

from rnnjax.cells import base
from rnnjax.kernels._chunks import over_chunks
from rnnjax.kernels.scan import StepInputs, scan_recurrence

REMATS = (None, "step", "chunk")


def check_remat(remat, chunk_size) -> None:
    """Raises for an unknown ``remat`` or a ``chunk_size`` that is not usable."""
    if remat not in REMATS:
        raise ValueError(f"remat: expected one of {REMATS}, got {remat!r}")
    if chunk_size is None:
        return
    if remat != "chunk":
        raise ValueError(
            f"chunk_size: only used with remat='chunk', got chunk_size={chunk_size!r} "
            f"with remat={remat!r}"
        )
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise TypeError(f"chunk_size: expected a positive int, got {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size: expected a positive int, got {chunk_size}")


def default_chunk_size(num_steps: int) -> int:
    """``ceil(sqrt(T))``: balances kept boundaries against one chunk's residuals."""
    return max(1, math.isqrt(max(num_steps - 1, 0)) + 1)


def run(
    recurrence,
    cell,
    params,
    carry0,
    xs,
    *,
    remat,
    chunk_size=None,
    unroll=1,
    valid=None,
    resets=None,
    rec_mask=None,
):
    """Runs ``recurrence`` over time-major ``xs (T, *B, I)`` with ``remat``
    ("step" or "chunk"); returns ``(carry_T, ys (T, *B, Y))``. ``valid``,
    ``resets`` and ``rec_mask`` as in `rnnjax.kernels.StepInputs`."""
    if remat == "step":
        recurrence, chunk_size = scan_recurrence, 1
    return chunked(
        recurrence,
        cell,
        params,
        carry0,
        xs,
        size=chunk_size,
        unroll=unroll,
        valid=valid,
        resets=resets,
        rec_mask=rec_mask,
    )


def chunked(
    recurrence,
    cell,
    params,
    carry0,
    xs,
    *,
    size=None,
    unroll=1,
    valid=None,
    resets=None,
    rec_mask=None,
):
    """Runs ``recurrence`` over time-major ``xs (T, *B, I)`` chunk by chunk of
    ``size`` steps (default ``ceil(sqrt(T))``), each chunk (projection and
    recurrence) under ``jax.checkpoint``; ``unroll`` is the steps per loop
    iteration inside a chunk.

    Returns ``(carry_T, ys (T, *B, Y))`` as ``recurrence`` gives on the whole
    sequence. ``valid``/``resets``: ``(T, *B)`` booleans or ``None``.
    """
    size = size or default_chunk_size(xs.shape[0])

    def chunk_fn(carry, chunk_xs):
        x, v, r = chunk_xs
        zs, bias = base.project_split(cell, params, x)
        if r is None:
            inputs = StepInputs(zs, bias, v, None, rec_mask)
            return recurrence(cell, params, carry, inputs, unroll=unroll)
        # A reset returns to the sequence's carry0, not to this chunk's start, which
        # the kernels cannot tell apart: run the plain scan that can.
        inputs = StepInputs(zs, bias, v, r, rec_mask)
        return scan_recurrence(cell, params, carry0, inputs, unroll=unroll, start=carry)

    chunk_fn = jax.checkpoint(chunk_fn, prevent_cse=False)
    return over_chunks(chunk_fn, carry0, xs, valid, resets, size, base.event_ndim(cell))

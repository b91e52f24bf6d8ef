"""The fused recurrence for cells of the form ``hw_t = rec_input(carry) @ W``
followed by an elementwise ``update`` (LSTM, GRU with reset after, Elman).

The forward pass is one ``lax.scan`` of one matrix product and one elementwise block
per step. The derivative is written by hand as a ``custom_jvp``:

- the tangent recurrence carries only ``dcarry``; the weight term of every step,
  ``op_t @ dW``, does not depend on the recurrence, so it is formed for all steps
  at once as ONE ``(T*B, K) x (K, N)`` product before the tangent scan;
- reverse mode is JAX's transpose of that linear rule: a reverse scan over the
  elementwise part and the ``dhw_t @ W^T`` chain, then ``dW = ops^T @ dHW`` as one
  large product over all time steps (as cuDNN does), and ``dW_x``, ``db`` as single
  products outside (the input projection is outside the kernel).

Because the rule is a JVP, forward mode (``jax.jvp``), reverse mode, ``vmap`` and
``checkpoint`` all work in any order. ``scan.scan_recurrence`` is the reference it
must equal.
"""

from __future__ import annotations

import functools

import jax
from jax import lax

from rnnjax.cells.base import linear
from rnnjax.kernels.scan import masked_step, tree_where


def fused_recurrence(
    cell, params, carry0, zs, valid=None, resets=None, rec_mask=None, unroll=1
):
    """Same contract as :func:`rnnjax.kernels.scan.scan_recurrence`."""
    if not cell.fusable:
        raise ValueError(
            f"impl: 'fused' needs a cell of the fused form; {type(cell).__name__} "
            "with these options is not (use impl='scan' or 'auto')"
        )
    w = cell.rec_weight(params)
    pw = cell.pointwise_params(params)
    return _fused(cell, unroll, pw, w, carry0, zs, valid, resets, rec_mask)


def _operand(cell, carry, carry0, reset, rec_mask):
    """The recurrent product's left operand: ``rec_input`` after reset and mask."""
    carry = carry if reset is None else tree_where(reset, carry0, carry)
    op = cell.rec_input(carry)
    return op if rec_mask is None else op * rec_mask.astype(op.dtype)


def _stacked(tree):
    """Adds a leading time axis of size 1 (explicit, for rank-promotion safety)."""
    return jax.tree.map(lambda x: x[None], tree)


def _cast_w(cell, w):
    return w if cell.dtype is None else w.astype(cell.dtype)


def _forward(cell, unroll, pw, w, carry0, zs, valid, resets, rec_mask):
    """Forward scan; also returns per-step residuals ``(carry_{t-1}, hw_t)``."""
    wc = _cast_w(cell, w)

    def body(carry, inputs):
        z, v, r = inputs
        hw = linear(_operand(cell, carry, carry0, r, rec_mask), wc, cell.dtype)
        recur = lambda c, zz: cell.update(pw, c, zz, hw)
        new, y = masked_step(recur, carry0, carry, z, v, r)
        return new, (y, carry, hw)

    carry_t, (ys, carries, hws) = lax.scan(
        body, carry0, (zs, valid, resets), unroll=unroll
    )
    return carry_t, ys, carries, hws


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _fused(cell, unroll, pw, w, carry0, zs, valid, resets, rec_mask):
    carry_t, ys, _, _ = _forward(
        cell, unroll, pw, w, carry0, zs, valid, resets, rec_mask
    )
    return carry_t, ys


@_fused.defjvp
def _fused_jvp(cell, unroll, primals, tangents):
    pw, w, carry0, zs, valid, resets, rec_mask = primals
    dpw, dw, dcarry0, dzs = tangents[:4]
    carry_t, ys, carries, hws = _forward(
        cell, unroll, pw, w, carry0, zs, valid, resets, rec_mask
    )
    # The weight term of every step at once: (T*B, K) @ (K, N).
    ops = _operand(cell, carries, _stacked(carry0), resets, _stacked(rec_mask))
    hw_from_dw = linear(ops, dw, cell.dtype)
    wc = _cast_w(cell, w)

    def tangent_step(dcarry, inputs):
        carry, z, hw, u, dz, v, r = inputs
        op_fn = lambda c, c0: _operand(cell, c, c0, r, rec_mask)
        _, dop = jax.jvp(op_fn, (carry, carry0), (dcarry, dcarry0))
        dhw = linear(dop, wc, cell.dtype) + u

        def step(c, c0, p, zz, h):
            recur = lambda ci, zi: cell.update(p, ci, zi, h)
            return masked_step(recur, c0, c, zz, v, r)

        _, (dnew, dy) = jax.jvp(
            step, (carry, carry0, pw, z, hw), (dcarry, dcarry0, dpw, dz, dhw)
        )
        return dnew, dy

    dcarry_t, dys = lax.scan(
        tangent_step,
        dcarry0,
        (carries, zs, hws, hw_from_dw, dzs, valid, resets),
        unroll=unroll,
    )
    return (carry_t, ys), (dcarry_t, dys)

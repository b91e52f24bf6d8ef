"""The plain recurrence: ``lax.scan`` over a cell's ``recur``, autodiff by JAX.

This is the reference every fused kernel must equal, and the path for cells that do
not have the fused form. It also defines `StepInputs`, the per-step inputs
that every recurrence takes (the contract is in [`rnnjax.kernels`][rnnjax.kernels]).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax.cells.base import expand, is_fusable, mask_operand


class StepInputs(NamedTuple):
    """What a recurrence reads besides the cell, its parameters and ``carry0``;
    time-major, a pytree (``None`` fields are absent).

    Attributes:
      zs: ``(T, *B, Z)``, the input projection of every step (``cell.project``,
        or ``cell.project_split`` without its bias).
      bias: ``(Z,)`` or ``None``, added to every step's ``z`` (a caller may project
        without the bias and let the step add it: one pass over ``zs`` fewer).
      valid: boolean ``(T, *B)`` or ``None``; where false (padding) the carry is
        left unchanged and the output is zero.
      resets: boolean ``(T, *B)`` or ``None``; where true the carry returns to
        ``carry0`` before the step.
      rec_mask: ``(*B, K)`` or ``None``, multiplies the recurrent product's
        operand (variational recurrent dropout).
    """

    zs: jax.Array
    bias: jax.Array | None = None
    valid: jax.Array | None = None
    resets: jax.Array | None = None
    rec_mask: jax.Array | None = None


def broadcast_mask(mask, leaf):
    """``mask (*B,)`` reshaped to broadcast against ``leaf (*B, X...)``."""
    return mask.reshape(mask.shape + (1,) * (leaf.ndim - mask.ndim))


def tree_where(mask, a, b):
    """``where(mask, a, b)`` leaf by leaf, ``mask (*B,)`` against leaves ``(*B, X)``."""
    return jax.tree.map(lambda x, y: jnp.where(broadcast_mask(mask, x), x, y), a, b)


def masked_step(recur, carry0, carry, z, valid, reset):
    """One step with episode resets and padding.

    ``reset``: the carry returns to ``carry0`` before the step. ``valid`` false:
    the carry is left unchanged and the output is zero.
    """
    carry_in = carry if reset is None else tree_where(reset, carry0, carry)
    new, y = recur(carry_in, z)
    if valid is not None:
        new = tree_where(valid, new, carry)
        y = jnp.where(broadcast_mask(valid, y), y, jnp.zeros((), y.dtype))
    return new, y


def fused_form_recur(cell, params, rec_mask):
    """``recur`` of a fused-form cell with the recurrent weight hoisted out of the
    loop (built once, cast once to the compute dtype)."""
    w = cell.rec_weight(params)
    w = w if cell.dtype is None else w.astype(cell.dtype)
    pw = cell.pointwise_params(params)

    def recur(carry, z):
        operand = mask_operand(cell.rec_input(carry), rec_mask)
        return cell.update(pw, carry, z, cell.rec_product(operand, w))

    return recur


def scan_recurrence(cell, params, carry0, inputs: StepInputs, *, unroll=1, start=None):
    """Runs ``cell`` over ``inputs.zs (T, *B, Z)``; returns
    ``(carry_T, ys (T, *B, Y))`` (the contract of [`rnnjax.kernels`][rnnjax.kernels]).

    Beyond the contract: ``start`` is the carry to start from when it is not
    ``carry0`` (resets still return to ``carry0``; used for a chunk of a longer
    sequence).
    """
    zs, bias, valid, resets, rec_mask = inputs
    if is_fusable(cell):
        recur = fused_form_recur(cell, params, rec_mask)
    else:
        recur = lambda carry, z: cell.recur(params, carry, z, rec_mask)

    def body(carry, step):
        z, v, r = step
        z = z if bias is None else z + expand(bias, z.ndim)
        return masked_step(recur, carry0, carry, z, v, r)

    start = carry0 if start is None else start
    return lax.scan(body, start, (zs, valid, resets), unroll=unroll)


def reversal_order(num_steps: int, lengths, batch_ndim: int):
    """Time indices that reverse each sequence's valid prefix (the padding stays
    in place): ``(T,)`` when ``lengths`` is ``None``, else ``(T, *B)`` for
    ``lengths (*B,)``. Its own inverse."""
    steps = jnp.arange(num_steps)
    if lengths is None:
        return steps[::-1]
    steps = steps.reshape((num_steps,) + (1,) * batch_ndim)
    lengths = lengths[None]
    return jnp.where(steps < lengths, lengths - 1 - steps, steps)

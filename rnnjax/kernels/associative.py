"""The parallel recurrence of cells that are linear in the state.

A [`LinearRecurrenceCell`][rnnjax.cells.base.LinearRecurrenceCell] (``rnnjax.min_gru``,
``rnnjax.min_lstm``) steps by an affine map of its carry,
``h_t = a_t * h_{t-1} + b_t``, where ``(a_t, b_t) = cell.linear_coefficients(params,
z_t)`` depend on the input alone. Affine maps compose associatively (the earlier map
first):

    (a1, b1) then (a2, b2) = (a1 * a2, a2 * b1 + b2)

so ``lax.associative_scan`` forms every prefix ``(A_t, B_t)`` in ``O(log T)``
depth (Blelloch 1990; Martin & Cundy 2018); with the initial carry folded into the
first step (``b_0 <- a_0 * h_0 + b_0``), ``h_t = B_t``. Resets and padding are
folded into the maps before the scan:

- ``resets[t]``: the carry returns to ``h_0`` before step ``t``, so the step is the
  constant map ``(0, a_t * h_0 + b_t)``;
- ``valid[t]`` false: the identity ``(1, 0)``, and the output is zero; the last
  prefix is then the carry after the last valid step;
- ``rec_mask``: multiplies ``a_t`` (it multiplies ``h_{t-1}`` in ``cell.recur``).

The scan is a ``lax.custom_linear_solve`` (`linear_scan`): its tangent is
another forward scan and its transpose (reverse mode) one reverse scan; ``vmap``
and the derivatives w.r.t. ``a`` and the initial carry come from JAX. This must
equal `rnnjax.kernels.scan_recurrence` on the same cell, values and
derivatives (``tests/kernels/test_associative.py``).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from rnnjax.cells.base import LinearRecurrenceCell, expand
from rnnjax.kernels.scan import StepInputs


def has_linear_recurrence(cell) -> bool:
    """Whether ``cell`` states a recurrence linear in the state: a
    `LinearRecurrenceCell` (its ``linear_coefficients``
    give the affine map of each step)."""
    return isinstance(cell, LinearRecurrenceCell)


def check_linear(cell) -> None:
    if not has_linear_recurrence(cell):
        raise ValueError(
            "impl: 'associative' needs a cell whose recurrence is linear in the "
            "state (a LinearRecurrenceCell, e.g. rnnjax.min_gru); "
            f"{type(cell).__name__} is not (use impl='scan' or 'auto')"
        )


def _compose(first, second):
    """The affine map ``first`` followed by ``second``, elementwise."""
    a1, b1 = first
    a2, b2 = second
    return a1 * a2, a2 * b1 + b2


def associative_recurrence(cell, params, carry0, inputs: StepInputs, *, unroll=1):
    """Runs ``cell`` over ``inputs.zs (T, *B, Z)``; returns
    ``(carry_T, ys (T, *B, H))`` (the contract of [`rnnjax.kernels`][rnnjax.kernels]).

    ``unroll`` is accepted for that contract and unused. The carry is
    ``h (*B, H)`` and the output ``y_t = h_t``.
    """
    check_linear(cell)
    del unroll
    zs, bias, valid, resets, rec_mask = inputs
    if bias is not None:
        zs = zs + expand(bias, zs.ndim)
    a, b = cell.linear_coefficients(params, zs)  # (T, *B, H) each
    if rec_mask is not None:
        a = a * rec_mask[None].astype(a.dtype)
    if resets is not None:
        r = resets[..., None]
        b = jnp.where(r, a * carry0[None] + b, b)
        a = jnp.where(r, jnp.zeros((), a.dtype), a)
    if valid is not None:
        v = valid[..., None]
        a = jnp.where(v, a, jnp.ones((), a.dtype))
        b = jnp.where(v, b, jnp.zeros((), b.dtype))
    if zs.shape[0] == 0:
        return carry0, jnp.zeros(b.shape, jnp.result_type(b, carry0))
    # h_0 = a_0 * carry0 + b_0; after that, h_t = a_t * h_{t-1} + b_t.
    first = a[:1] * carry0[None] + b[:1]
    hs = linear_scan(a, jnp.concatenate([first, b[1:]]).astype(first.dtype))
    ys = hs if valid is None else jnp.where(v, hs, jnp.zeros((), hs.dtype))
    return hs[-1], ys


def linear_scan(a, b):
    """``h (T, ...)`` with ``h_0 = b_0`` and ``h_t = a_t * h_{t-1} + b_t``.

    The map ``b -> h`` is the inverse of the lower bidiagonal ``L h = h_t - a_t
    h_{t-1}``, so it is written as ``lax.custom_linear_solve``: the solve is one
    associative scan, its tangent another (JAX's implicit rule), and its transpose
    (reverse mode) the reverse associative scan ``g_t = c_t + a_{t+1} g_{t+1}``, in
    place of differentiating through the scan's tree of slices.
    """

    def matvec(h):
        return h - a * _shift(h, 1)

    def solve(_, rhs):
        coeffs = jnp.concatenate([jnp.zeros_like(a[:1]), a[1:]])  # no a_0
        return lax.associative_scan(_compose, (coeffs, rhs))[1]

    def transpose_solve(_, rhs):
        coeffs = _shift(a, -1)
        return lax.associative_scan(_compose, (coeffs, rhs), reverse=True)[1]

    return lax.custom_linear_solve(matvec, b, solve, transpose_solve)


def _shift(x, k):
    """``x`` moved ``k`` steps later (``k = 1``: ``x[t-1]``, zero at ``t = 0``) or
    earlier (``k = -1``: ``x[t+1]``, zero at the end) along the time axis."""
    zero = jnp.zeros_like(x[:1])
    if k == 1:
        return jnp.concatenate([zero, x[:-1]])
    return jnp.concatenate([x[1:], zero])

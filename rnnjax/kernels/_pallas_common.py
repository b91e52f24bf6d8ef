"""What the Pallas GPU and TPU kernels share: the gate arithmetic and the masked
steps on tiles, the padded layout and the static plan of one call.

The split (see `rnnjax.kernels.pallas` for the entry point and the
``custom_vjp``): the input projection stays outside (XLA); the forward kernel walks
time with ``W_h`` on chip, carrying ``h`` (and ``c``) in float32, and writes ``ys``
plus, under differentiation, the residuals of every step (the gate activations,
``c_in``, and the operand ``h_in``); the backward kernel walks time in reverse
carrying ``dh`` (and ``dc``) and writes the pre-activation gradients ``da``.
``dW_h``, ``dz``, ``db`` (and ``d rec_mask``) are large products or sums over all
steps outside the kernels.

Layout handed to a flavour (all padded, batch flattened; legend ``G`` gates,
``R`` residual tiles per step, ``Hp``/``Bp``/``Tp`` padded sizes):

    w (Hp, G, Hp)   bias (G, Hp)   bhn (1, Hp)        h0, c0, mask (Bp, Hp)
    zs (Tp, Bp, G, Hp)             valid, resets (Tp, Bp, 1) float32 0/1

Padded hidden units start at zero and stay zero (zero rows and columns of ``W``,
zero pre-activations: the LSTM's ``c`` and ``h`` and the GRU's ``h`` are fixed
points at zero); padded batch rows and time steps are cut off after the call
(padded steps are invalid, so the carry passes through them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

F32 = jnp.float32


# ------------------------------------------------------------- gate arithmetic
#
# On tiles: lists of (BB, N) float32 arrays, one per gate. Shared by every kernel.


def _sigmoid(x):
    return 1.0 / (1.0 + jnp.exp(-x))  # lowers the same everywhere (Triton, Mosaic)


@dataclasses.dataclass(frozen=True)
class LSTMMath:
    """Gates ``i, f, g, o``; residuals ``[i, f, g, o, c_in]``."""

    gates: int = 4
    residuals: int = 5
    has_c: bool = True

    def forward(self, z, hw, bhn, h_in, c_in):
        del bhn, h_in
        i, f, o = (_sigmoid(z[k] + hw[k]) for k in (0, 1, 3))
        g = jnp.tanh(z[2] + hw[2])
        c = f * c_in + i * g
        return (o * jnp.tanh(c), c), [i, f, g, o, c_in]

    def backward(self, dh, dc, res, h_in):
        """``(da (per gate, w.r.t. z + hw), dan None, dh_in direct None, dc_in)``."""
        del h_in
        i, f, g, o, c_in = res
        tc = jnp.tanh(f * c_in + i * g)
        dc = dc + dh * o * (1.0 - tc * tc)
        da = [
            dc * g * i * (1.0 - i),
            dc * c_in * f * (1.0 - f),
            dc * i * (1.0 - g * g),
            dh * tc * o * (1.0 - o),
        ]
        return da, None, None, dc * f


@dataclasses.dataclass(frozen=True)
class GRUMath:
    """Gates ``r, z, n`` (reset after the product); residuals ``[r, u, n, hn]``
    with ``hn = h W_hn + b_hn``."""

    gates: int = 3
    residuals: int = 4
    has_c: bool = False

    def forward(self, z, hw, bhn, h_in, c_in):
        del c_in
        r = _sigmoid(z[0] + hw[0])
        u = _sigmoid(z[1] + hw[1])
        hn = hw[2] if bhn is None else hw[2] + bhn
        n = jnp.tanh(z[2] + r * hn)
        return ((1.0 - u) * n + u * h_in, None), [r, u, n, hn]

    def backward(self, dh, dc, res, h_in):
        """``(da w.r.t. hw (r, z, hn), dan w.r.t. z_n, dh_in direct, None)``; the
        ``z`` gradient is ``[da_r, da_z, dan]``."""
        del dc
        r, u, n, hn = res
        dan = dh * (1.0 - u) * (1.0 - n * n)
        da = [dan * hn * r * (1.0 - r), dh * (h_in - n) * u * (1.0 - u), dan * r]
        return da, dan, dh * u, None


# ------------------------------------------------------- masked steps on tiles


def where0(flag, x):
    """``x`` where ``flag`` (or everywhere without one), else zero."""
    return x if flag is None else jnp.where(flag, x, jnp.zeros_like(x))


def keep_new(valid, new, old):
    """``new`` where ``valid`` (everywhere without a flag), else ``old``."""
    return new if valid is None or new is None else jnp.where(valid, new, old)


def reset_to(reset, start, carry):
    """``start`` where ``reset``, else ``carry`` (``carry`` without a flag)."""
    return carry if reset is None or carry is None else jnp.where(reset, start, carry)


def forward_select(math_, valid, reset, carry, carry0, z, hw_of, bhn):
    """One masked forward step on tiles (see ``scan.masked_step``).

    ``carry = (h, c)`` (``c`` None for the GRU), ``carry0`` likewise, ``hw_of(h_in)``
    the recurrent product of the step; returns ``(carry, y, residuals, h_in)``.
    """
    h, c = carry
    h_in, c_in = reset_to(reset, carry0[0], h), reset_to(reset, carry0[1], c)
    (h_new, c_new), res = math_.forward(z, hw_of(h_in), bhn, h_in, c_in)
    new = (keep_new(valid, h_new, h), keep_new(valid, c_new, c))
    return new, where0(valid, h_new), res, h_in


def backward_select(valid, reset, dcarry, g, acc):
    """Carries the gradient from after step ``t`` to before it.

    ``dcarry`` is the gradient w.r.t. the carry after the step, ``g`` the one
    w.r.t. the step's ``carry_in``; a reset sends ``g`` to ``carry0`` (``acc``),
    an invalid step passes ``dcarry`` through. Returns ``(dcarry_prev, acc)``.
    """
    if reset is not None:
        acc = jax.tree.map(lambda a, x: a + where0(reset, x), acc, g)
        g = jax.tree.map(lambda x: jnp.where(reset, jnp.zeros_like(x), x), g)
    if valid is not None:
        g = jax.tree.map(
            lambda x, d: x + jnp.where(valid, jnp.zeros_like(d), d), g, dcarry
        )
    return g, acc


def step_cotangents(valid, dy, dcarry):
    """``(dh_new, dc_new)``: the gradients w.r.t. the step's new carry (zero on an
    invalid step, whose outputs are discarded)."""
    dh, dc = dcarry
    return where0(valid, dy + dh), (None if dc is None else where0(valid, dc))


# ------------------------------------------------------------------ the layout


def step_operands(a, seq, row):
    """The operand entries every whole-sequence kernel reads besides its own:
    ``valid`` and ``resets`` blocked like the sequence, ``mask`` like a row."""
    return [
        ("valid", a["valid"], seq(1)),
        ("resets", a["resets"], seq(1)),
        ("mask", a["mask"], row),
    ]


def state_outputs(math_, shape, dtype, row, names):
    """Output entries of a state ``(Bp, Hp)``: ``names[0]`` (of h), and
    ``names[1]`` (of c) for cells that carry one."""
    state = jax.ShapeDtypeStruct(shape, dtype)
    return [(names[0], state, row)] + ([(names[1], state, row)] if math_.has_c else [])


def round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@dataclasses.dataclass(frozen=True)
class Plan:
    """Static configuration of one call (hashable: it keys the ``custom_vjp``).

    ``flavour``/``design`` pick the kernels; ``blocks`` holds the flavour's tile
    sizes as ``(name, value)`` pairs.
    """

    kind: str  # "lstm" | "gru"
    flavour: str
    design: str
    interpret: bool
    T: int
    B: int
    H: int
    Tp: int
    Bp: int
    Hp: int
    compute_dtype: Any
    out_dtype: Any
    unroll: int = 1
    blocks: tuple = ()

    @property
    def math(self):
        return LSTMMath() if self.kind == "lstm" else GRUMath()

    def block(self, name):
        return dict(self.blocks)[name]


@dataclasses.dataclass(frozen=True)
class Flavour:
    """A flavour's pieces: ``plan(...) -> Plan`` (or a reason string when the shape
    does not fit), ``forward(plan, arrays, training)`` and ``backward(plan, ...)``
    (see `recurrence`)."""

    plan: Callable
    forward: Callable
    backward: Callable

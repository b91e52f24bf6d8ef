"""The sLSTM of xLSTM (Beck et al. 2024): exponential gating with a normaliser and
a stabiliser state, and a head-wise block-diagonal recurrent matrix.

With ``a = x_t W_x + b + h_{t-1} R`` split into the gate blocks ``i, f, z, o`` (the
paper's tilde pre-activations), the paper's equations:

    c_t = f_t c_{t-1} + i_t z_t                                   (8)
    n_t = f_t n_{t-1} + i_t                                       (9)
    h_t = o_t (c_t / n_t)                                         (10)
    z_t = tanh(a_z)                                               (11)
    i_t = exp(a_i)                                                (12)
    f_t = sigmoid(a_f)  or  exp(a_f)      (forget_gate)           (13)
    o_t = sigmoid(a_o)                                            (14)

computed with the stabiliser state ``m`` (c and n are then scaled by
``exp(-m_t)``, which cancels in ``c_t / n_t``):

    m_t = max(log f_t + m_{t-1}, log i_t)                         (15)
    i'_t = exp(log i_t - m_t)                                     (16)
    f'_t = exp(log f_t + m_{t-1} - m_t)                           (17)

and ``i'_t``, ``f'_t`` in place of ``i_t``, ``f_t`` in (8) and (9). Where
``n_{t-1} == 0`` (the zero state; ``n`` is positive after any step) ``m_t = log
i_t`` and ``f'_t = 1``, as the ``xlstm`` package does (its test is over the whole
batch; elementwise gives the same outputs and avoids ``0 / 0``).

``R`` is block-diagonal over ``NH`` heads of size ``DH = H / NH``: head ``n``'s
part of ``h_{t-1}`` feeds only head ``n``'s columns of each gate block
(`headwise_linear`, the same product for any per-head sizes ``Din`` in and
``Dout`` out, is public for the xLSTM blocks' head-wise projections).

Layout (the xLSTM blocks and the weight converter rely on it): the ``Z = 4H``
pre-activations are gate-major in the order ``i, f, z, o``, each block of ``H``
columns head-major (head ``n`` owns columns ``n*DH .. (n+1)*DH - 1`` of each
block). Parameters: ``w_x (I, 4H)``, ``w_h (NH, DH, 4*DH)`` (head ``n``'s recurrent
matrix, its columns gate-major ``i, f, z, o`` of ``DH`` each: the package's
``recurrent_kernel (NH, DH, 4, DH)`` reshaped), ``b (4H,)``. Carry:
[`rnnjax.SLSTMState`][rnnjax.SLSTMState]; output ``y_t = h_t``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax.cells.base import (
    FusedFormCell,
    Initializers,
    check_positive_int,
    sharded_in_type,
    split_gates,
    zeros,
)

GATES = ("i", "f", "z", "o")
FORGET_GATES = ("sigmoid", "exp")
FORGET_BIAS_SCHEMES = ("powerlaw_blockdependent", "small_init")


def check_heads(hidden_size: int, num_heads, forget_gate) -> None:
    """The xLSTM cells' shared checks: ``num_heads`` a positive divisor of
    ``hidden_size`` and ``forget_gate`` one of `FORGET_GATES`; ValueError naming
    the argument otherwise."""
    check_positive_int(num_heads, "num_heads")
    if hidden_size % num_heads:
        raise ValueError(
            f"num_heads: expected a divisor of hidden_size={hidden_size}, "
            f"got {num_heads}"
        )
    if forget_gate not in FORGET_GATES:
        raise ValueError(
            f"forget_gate: expected one of {FORGET_GATES}, got {forget_gate!r}"
        )


class SLSTMState(NamedTuple):
    """sLSTM carry, each ``(*B, H)``: cell ``c``, normaliser ``n``, stabiliser
    ``m`` and output ``h`` (all zero initially)."""

    c: jax.Array
    n: jax.Array
    m: jax.Array
    h: jax.Array


def _by_heads(x, w, dtype):
    """``x (..., NH*Din)`` by ``w (NH, Din, Dout)`` head by head: ``(NH, ..., Dout)``
    (the leading dims flattened to one unless ``x`` is explicitly sharded)."""
    heads, d_in, _ = w.shape
    out_dtype = jnp.promote_types(jnp.float32, x.dtype)
    if dtype is not None:
        x, w = x.astype(dtype), w.astype(dtype)
    else:
        w = w.astype(x.dtype)
    lead = (-1,) if x.ndim > 2 and not sharded_in_type(x) else x.shape[:-1]
    x = x.reshape((*lead, heads, d_in))
    batch = x.ndim - 2
    return lax.dot_general(
        x, w, (((batch + 1,), (1,)), ((batch,), (0,))), preferred_element_type=out_dtype
    )


def _check_headwise(x, w) -> None:
    if jnp.ndim(w) != 3:
        raise ValueError(
            f"w: expected a head-wise weight (NH, Din, Dout), got shape {jnp.shape(w)}"
        )
    heads, d_in, _ = jnp.shape(w)
    if jnp.ndim(x) < 1 or jnp.shape(x)[-1] != heads * d_in:
        raise ValueError(
            f"x: expected (..., {heads * d_in}) features (NH*Din for w of shape "
            f"{jnp.shape(w)}), got shape {jnp.shape(x)}"
        )


def headwise_linear(x, w, dtype=None):
    """The block-diagonal product of ``x (..., NH*Din)`` and ``w (NH, Din, Dout)``:
    head ``n``'s features ``x[..., n*Din:(n+1)*Din]`` times ``w[n]``, giving
    ``(..., NH*Dout)`` head-major. Any leading dims; operands cast to the compute
    ``dtype`` when given, the result float32 (or ``x``'s dtype when wider), as
    ``rnnjax.cells.base.linear``. Raises ValueError naming ``x`` or ``w`` when the
    shapes do not fit."""
    _check_headwise(x, w)
    y = _by_heads(x, w, dtype)
    return jnp.moveaxis(y, 0, -2).reshape((*jnp.shape(x)[:-1], -1))


def _powerlaw(head_size: int, block_index: int, num_blocks: int):
    """The package's ``powerlaw_blockdependent`` forget-gate bias of one head:
    ``5 - 12 * (k / (DH - 1)) ** (0.3 + 1.3 * block_index / (num_blocks - 1))``."""
    ratio = block_index / (num_blocks - 1) if num_blocks > 1 else 0.0
    k = jnp.linspace(0.0, 1.0, head_size) if head_size > 1 else jnp.zeros((1,))
    return 5.0 - 12.0 * k ** (0.3 + 1.3 * ratio)


@dataclasses.dataclass(frozen=True)
class SLSTM(FusedFormCell):
    """sLSTM cell (equations and layout in the module docstring); build it with
    `rnnjax.slstm`.

    Besides [`CellBase`][rnnjax.CellBase]'s ``hidden_size`` (``H``), ``dtype`` and
    ``inits``. The defaults are the ``xlstm`` package's, so that a cell starts
    where the package's does (and converted weights need no other options):
    4 heads, a sigmoid forget gate, zero recurrent weights ``w_h`` (its
    ``recurrent_weight_init="zeros"``), zero biases with the power-law forget
    biases added (long memories in some units, short in others, from the
    start); ``w_x`` is Glorot uniform (the package's cell has no input weights:
    its blocks project the input).

    Attributes:
      num_heads: ``NH``, the heads of the block-diagonal recurrent matrix (4, the
        package's default); must divide ``hidden_size``.
      forget_gate: ``"sigmoid"`` (default, the package's ``slstm`` function) or
        ``"exp"``, eq. (13).
      forget_bias: added to the forget block of the bias at initialisation: the
        package's schemes by name, ``"powerlaw_blockdependent"`` (its default: per
        head ``5 - 12 * (k / (DH - 1)) ** (0.3 + 1.3 * r)`` for ``k = 0 ..
        DH - 1``, ``r = block_index / (num_blocks - 1)``, 0 for one block; 5 when
        ``DH = 1``) or ``"small_init"`` (``linspace(3, 6, DH)`` per head), or a
        number (the same for every unit).
      block_index, num_blocks: the cell's position in a residual stack of
        ``num_blocks`` blocks (``"powerlaw_blockdependent"`` only; the package's
        ``_block_idx``, ``_num_blocks``).
    """

    num_heads: int = 4
    forget_gate: str = "sigmoid"
    forget_bias: Any = "powerlaw_blockdependent"
    block_index: int = 0
    num_blocks: int = 1

    def __post_init__(self):
        super().__post_init__()
        check_heads(self.hidden_size, self.num_heads, self.forget_gate)
        fb = self.forget_bias
        if not (
            fb in FORGET_BIAS_SCHEMES
            or (isinstance(fb, int | float) and not isinstance(fb, bool))
        ):
            raise ValueError(
                f"forget_bias: expected one of {FORGET_BIAS_SCHEMES} or a number, "
                f"got {fb!r}"
            )
        check_positive_int(self.num_blocks, "num_blocks")
        index = self.block_index
        if isinstance(index, bool) or not isinstance(index, int):
            index = -1
        if not 0 <= index < self.num_blocks:
            raise ValueError(
                f"block_index: expected an int in [0, num_blocks={self.num_blocks}), "
                f"got {self.block_index!r}"
            )

    @property
    def head_size(self) -> int:
        """``DH = H / NH``."""
        return self.hidden_size // self.num_heads

    # ---------------------------------------------------------------- contract

    def _forget_shift(self):
        """``(H,)``: what ``forget_bias`` adds to the forget block."""
        H, DH = self.hidden_size, self.head_size
        if self.forget_bias == "powerlaw_blockdependent":
            head = _powerlaw(DH, self.block_index, self.num_blocks)
        elif self.forget_bias == "small_init":
            head = jnp.linspace(3.0, 6.0, DH)
        else:
            return jnp.full((H,), float(self.forget_bias))
        return jnp.tile(head, self.num_heads)

    def _init(self, key, input_size):
        kx, kh, kb = jax.random.split(key, 3)
        H, NH, DH = self.hidden_size, self.num_heads, self.head_size
        b = self.inits.bias_or_default()(kb, (4 * H,), jnp.float32)
        return {
            "w_x": self.inits.kernel_or_default()(kx, (input_size, 4 * H), jnp.float32),
            "w_h": (self.inits.recurrent or zeros())(kh, (NH, DH, 4 * DH), jnp.float32),
            "b": b.at[H : 2 * H].add(self._forget_shift()),
        }

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        zero = self._zeros(batch_shape, self.hidden_size, dtype)
        return SLSTMState(zero, zero, zero, zero)

    # ---------------------------------------------------------------- fused form

    def rec_input(self, carry):
        return carry.h

    def rec_width(self, params) -> int:
        return self.hidden_size

    def rec_product(self, operand, w):
        """``operand (..., H)`` by the head-wise ``w (NH, DH, 4*DH)``, rearranged
        to the gate-major layout: ``(..., 4H)``."""
        y = _by_heads(operand, w, self.dtype)  # (NH, M, 4*DH)
        NH, DH = self.num_heads, self.head_size
        y = y.reshape((NH, *y.shape[1:-1], 4, DH))
        y = jnp.moveaxis(y, (0, -2), (-2, -3))  # (M, 4, NH, DH)
        return y.reshape((*operand.shape[:-1], 4 * self.hidden_size))

    def update(self, pw, carry, z, hw):
        a = split_gates(z + hw, GATES)
        log_i = a["i"]
        log_f = jax.nn.log_sigmoid(a["f"]) if self.forget_gate == "sigmoid" else a["f"]
        fresh = carry.n == 0.0  # the zero state: m_t = log i_t, f' = 1 (c = n = 0)
        m = jnp.where(fresh, log_i, jnp.maximum(log_f + carry.m, log_i))
        i = jnp.exp(log_i - m)
        f = jnp.exp(jnp.where(fresh, 0.0, log_f + carry.m - m))
        c = f * carry.c + i * jnp.tanh(a["z"])
        n = f * carry.n + i
        h = jax.nn.sigmoid(a["o"]) * (c / n)
        return SLSTMState(c, n, m, h), h


def slstm(
    hidden_size: int,
    *,
    num_heads: int = 4,
    forget_gate: str = "sigmoid",
    forget_bias: Any = "powerlaw_blockdependent",
    block_index: int = 0,
    num_blocks: int = 1,
    dtype: Any = None,
    kernel_init=None,
    recurrent_init=None,
    bias_init=None,
) -> SLSTM:
    """An sLSTM cell (see the module docstring for the equations and layout).

    Every option is an attribute of [`SLSTM`][rnnjax.SLSTM],
    documented there. ``kernel_init``, ``recurrent_init`` and ``bias_init`` (each
    ``f(key, shape, dtype)``; ``recurrent_init`` gets the shape ``(NH, DH, 4*DH)``)
    make its ``inits``.
    """
    return SLSTM(
        hidden_size,
        dtype=dtype,
        inits=Initializers(kernel_init, recurrent_init, bias_init),
        num_heads=num_heads,
        forget_gate=forget_gate,
        forget_bias=forget_bias,
        block_index=block_index,
        num_blocks=num_blocks,
    )

"""The mLSTM (Beck et al. 2024, "xLSTM: Extended Long Short-Term Memory", eqs.
19-27): a matrix memory per head, written with exponential input gates and read by
a query, with gates that read only the input.

The cell, with ``NH`` heads of ``DH = H / NH`` features and ``a = x_t W_x + b``
split into the blocks ``q, k, v, o`` (``H`` each) and ``i, f`` (``NH`` each, one
scalar per head), in that order (``Z = 4H + 2NH``):

    q_t = a_q,  k_t = a_k / sqrt(DH),  v_t = a_v        (per head: (NH, DH))
    i~_t = a_i,  f~_t = a_f,  o_t = sigmoid(a_o)
    h~_t = core(q_t, k_t, v_t, i~_t, f~_t)               (heads concatenated: H)
    h_t = o_t * h~_t

The core, per head, is the stabilised recurrence of the paper (its state is the
true ``C``, ``n`` times ``exp(-m)``):

    log f_t = logsigmoid(f~_t)     ("exp" forget gate: log f_t = f~_t)
    m_t  = max(log f_t + m_{t-1}, i~_t)
    i'_t = exp(i~_t - m_t),  f'_t = exp(log f_t + m_{t-1} - m_t)
    C_t  = f'_t C_{t-1} + i'_t k_t v_t^T             (C[dk, dv])
    n_t  = f'_t n_{t-1} + i'_t k_t
    h~_t = (q_t^T C_t) / (max(|q_t . n_t|, exp(-m_t)) + eps)

(`mlstm_step`). Because the gates read only the input, the core over a whole
sequence also has a parallel form (quadratic in ``T``, like attention) and a
chunkwise form (linear in ``T``), in ``rnnjax.kernels.mlstm``: the capability
that `ParallelFormCell` states and ``rnnjax.unroll`` uses
(``impl="parallel"``, ``"chunkwise"``; ``"auto"`` picks the chunkwise form).

Parameters: ``w_x (I, Z)`` and ``b (Z,)``; default initialisers Glorot-uniform
``w_x`` and zero ``b`` except the forget-gate block, ``linspace(3, 6, NH)``
(as the ``xlstm`` package: ``f ~ 0.95`` to ``0.998`` at the start, a long memory).
A ``bias_init`` replaces the whole bias, forget block included. No recurrent
weights: there is no recurrent matrix product, so a variational recurrent-dropout
mask (``rec_mask``, a Layer's ``recurrent_dropout``) is refused with a
ValueError. Carry: `MLSTMState` ``(C (*B, NH, DH, DH), n (*B, NH, DH),
m (*B, NH))``, zeros. Output ``y_t = h_t`` ``(*B, H)``.

Unlike the ``xlstm`` package's mLSTM layer, the cell has no causal convolution,
skip connection or output norm: those belong to the xLSTM blocks.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rnnjax.cells.base import CellBase, Initializers, check_positive_int
from rnnjax.cells.slstm import check_heads


class MLSTMState(NamedTuple):
    """The carry of the mLSTM core, per head (stabilised: the true ``C`` and ``n``
    times ``exp(-m)``).

    Attributes:
      C: ``(*B, NH, DH, DH)``, the matrix memory ``C[dk, dv]``.
      n: ``(*B, NH, DH)``, the normaliser.
      m: ``(*B, NH)``, the stabiliser (a log scale).
    """

    C: jax.Array
    n: jax.Array
    m: jax.Array


def log_forget(f_pre, forget_gate: str = "sigmoid"):
    """``log f`` from the forget gate's pre-activation: ``logsigmoid`` (the
    ``"sigmoid"`` gate) or the identity (the ``"exp"`` gate, ``f = exp(f~)``)."""
    return jax.nn.log_sigmoid(f_pre) if forget_gate == "sigmoid" else f_pre


def mlstm_step(
    carry: MLSTMState, q, k, v, i_pre, f_pre, *, forget_gate="sigmoid", eps=1e-6
):
    """One step of the core (the module docstring's equations), every head at once.

    Args:
      carry: `MLSTMState` before the step.
      q, k, v: ``(*B, NH, DH)``; ``k`` already scaled by ``1/sqrt(DH)``.
      i_pre, f_pre: ``(*B, NH)``, the gates' pre-activations.
      forget_gate: ``"sigmoid"`` or ``"exp"``.
      eps: added to the denominator of ``h``.

    Returns:
      ``(carry, h (*B, NH, DH))``.
    """
    C, n, m = carry
    log_f = log_forget(f_pre, forget_gate)
    m_new = jnp.maximum(log_f + m, i_pre)
    i_gate = jnp.exp(i_pre - m_new)
    f_gate = jnp.exp(log_f + m - m_new)
    C = f_gate[..., None, None] * C + i_gate[..., None, None] * (
        k[..., :, None] * v[..., None, :]
    )
    n = f_gate[..., None] * n + i_gate[..., None] * k
    num = jnp.einsum("...k,...kv->...v", q, C)
    qn = jnp.sum(q * n, axis=-1)
    den = jnp.maximum(jnp.abs(qn), jnp.exp(-m_new)) + eps
    return MLSTMState(C, n, m_new), num / den[..., None]


@dataclasses.dataclass(frozen=True)
class ParallelFormCell(CellBase):
    """A cell whose recurrence is the mLSTM core (`mlstm_step`) on queries, keys,
    values and gate pre-activations that depend on the input alone.

    Such a cell has, besides the step, the parallel and the chunkwise form of the
    core over a whole sequence (``rnnjax.kernels.mlstm``): ``rnnjax.unroll`` runs
    them with ``impl="parallel"`` or ``"chunkwise"``, and ``"auto"`` picks the
    chunkwise one (the parallel form when ``T <= chunk_size``). Subclasses define
    `core_inputs` and `core_outputs`; the carry is an `MLSTMState` (zeros).

    Attributes:
      num_heads: ``NH``, heads of the matrix memory; ``H`` must be a multiple.
      forget_gate: ``"sigmoid"`` (``log f = logsigmoid(f~)``, the paper's
        default) or ``"exp"`` (``log f = f~``).
      chunk_size: steps per chunk of the chunkwise form (the parallel form inside
        a chunk, the recurrence between chunks).
      eps: added to the denominator of ``h~``.
    """

    num_heads: int = 4
    forget_gate: str = "sigmoid"
    chunk_size: int = 64
    eps: float = 1e-6

    def __post_init__(self):
        super().__post_init__()
        check_heads(self.hidden_size, self.num_heads, self.forget_gate)
        check_positive_int(self.chunk_size, "chunk_size")
        if (
            isinstance(self.eps, bool)
            or not isinstance(self.eps, int | float)
            or not self.eps >= 0
        ):
            raise ValueError(f"eps: expected a float >= 0, got {self.eps!r}")

    @property
    def head_size(self) -> int:
        """``DH = H / NH``."""
        return self.hidden_size // self.num_heads

    @abc.abstractmethod
    def core_inputs(self, params, z):
        """``(q, k, v, i_pre, f_pre)`` for ``z (..., Z)`` (bias included), any
        leading dims: ``q, k, v (..., NH, DH)`` (``k`` scaled by ``1/sqrt(DH)``),
        ``i_pre, f_pre (..., NH)``."""

    @abc.abstractmethod
    def core_outputs(self, params, z, h):
        """The output ``y (..., Y)`` from ``z (..., Z)`` and the core's
        ``h (..., NH, DH)``; zero where ``h`` is zero."""

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        batch_shape = tuple(batch_shape)
        nh, dh = self.num_heads, self.head_size
        return MLSTMState(
            jnp.zeros((*batch_shape, nh, dh, dh), dtype),
            jnp.zeros((*batch_shape, nh, dh), dtype),
            jnp.zeros((*batch_shape, nh), dtype),
        )

    def recur(self, params, carry, z, rec_mask=None):
        check_no_rec_mask(self, rec_mask)
        q, k, v, i_pre, f_pre = self.core_inputs(params, z)
        carry, h = mlstm_step(
            carry, q, k, v, i_pre, f_pre, forget_gate=self.forget_gate, eps=self.eps
        )
        return carry, self.core_outputs(params, z, h)


def check_no_rec_mask(cell, rec_mask) -> None:
    """Raises ValueError naming ``rec_mask`` when one is given: the mLSTM has no
    recurrent matrix product for a variational recurrent-dropout mask."""
    if rec_mask is not None:
        raise ValueError(
            f"rec_mask: {type(cell).__name__} has no recurrent matrix product for "
            "a variational recurrent-dropout mask to multiply (a Layer's "
            f"recurrent_dropout); expected None, got shape {jnp.shape(rec_mask)}"
        )


@dataclasses.dataclass(frozen=True)
class MLSTM(ParallelFormCell):
    """The mLSTM cell; build it with [`rnnjax.mlstm`][rnnjax.mlstm]. Options: those
    of [`ParallelFormCell`][rnnjax.cells.mlstm.ParallelFormCell] (the equations
    and the parameter layout are in the module docstring)."""

    @property
    def input_width(self) -> int:
        """``Z = 4H + 2NH``: the blocks ``q, k, v, o`` (``H``) and ``i, f``
        (``NH``)."""
        return 4 * self.hidden_size + 2 * self.num_heads

    def _init(self, key, input_size):
        kx, kb = jax.random.split(key)
        width = self.input_width
        w_x = self.inits.kernel_or_default()(kx, (input_size, width), jnp.float32)
        if self.inits.bias is not None:
            b = self.inits.bias(kb, (width,), jnp.float32)
        else:
            forget = jnp.linspace(3.0, 6.0, self.num_heads, dtype=jnp.float32)
            b = (
                jnp.zeros((width,), jnp.float32)
                .at[width - self.num_heads :]
                .set(forget)
            )
        return {"w_x": w_x, "b": b}

    def _blocks(self, z):
        H, NH = self.hidden_size, self.num_heads
        q, k, v, o, i_pre, f_pre = jnp.split(
            z, [H, 2 * H, 3 * H, 4 * H, 4 * H + NH], axis=-1
        )
        return q, k, v, o, i_pre, f_pre

    def core_inputs(self, params, z):
        q, k, v, _, i_pre, f_pre = self._blocks(z)
        heads = (*z.shape[:-1], self.num_heads, self.head_size)
        k = k * (1.0 / math.sqrt(self.head_size))
        return q.reshape(heads), k.reshape(heads), v.reshape(heads), i_pre, f_pre

    def core_outputs(self, params, z, h):
        o = jax.nn.sigmoid(self._blocks(z)[3])
        return o * h.reshape(o.shape)


def mlstm(
    hidden_size: int,
    *,
    num_heads: int = 4,
    forget_gate: str = "sigmoid",
    chunk_size: int = 64,
    eps: float = 1e-6,
    dtype: Any = None,
    kernel_init=None,
    bias_init=None,
) -> MLSTM:
    """The mLSTM cell (Beck et al. 2024; the module docstring has the equations,
    the parameter layout and the default initialisation).

    Every option is an attribute of `MLSTM` (`ParallelFormCell`).
    ``kernel_init`` and ``bias_init`` (each ``f(key, shape, dtype)``) make its
    ``inits``; ``bias_init`` replaces the default bias (forget block
    ``linspace(3, 6, NH)``, zeros elsewhere) entirely.
    """
    return MLSTM(
        hidden_size,
        dtype=dtype,
        inits=Initializers(kernel_init, None, bias_init),
        num_heads=num_heads,
        forget_gate=forget_gate,
        chunk_size=chunk_size,
        eps=eps,
    )

"""minGRU and minLSTM (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs
All We Needed?"): gates that read only the input, so the recurrence is linear in the
state and runs as a parallel scan (``rnnjax.kernels.associative_recurrence``).

minGRU, gate order ``z, h``, with ``a = x_t W_x + b``:

    z_t  = sigmoid(a_z)
    h~_t = a_h                                 (g(a_h) with log_space=True)
    h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t

minLSTM, gate order ``f, i, h``:

    f_t  = sigmoid(a_f)
    i_t  = sigmoid(a_i)
    f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)
    h~_t = a_h                                 (g(a_h) with log_space=True)
    h_t  = f'_t * h_{t-1} + i'_t * h~_t

Both are ``h_t = a_t * h_{t-1} + b_t`` with ``(a_t, b_t)`` a function of ``x_t``
alone (`MinimalCell.linear_coefficients`): they are
`LinearRecurrenceCell`, so ``rnnjax.unroll`` runs them
through the associative scan (``O(log T)`` depth) instead of a sequential loop.

``log_space=True`` is the paper's log-space variant: the candidate is
``g(a_h) = a_h + 1/2`` for ``a_h >= 0`` and ``sigmoid(a_h)`` otherwise, so it is
positive and the state stays positive from a positive initial state. The paper
computes that variant in log space because its scan divides by a cumulative product
of the gates, which underflows; rnnjax's scan composes the affine maps ``(a, b)``
directly (no division: a product that underflows to zero is the correct limit), so
it computes both variants in linear space, with the same values. The default is the
plain variant (the paper's sequential-mode equations above).

The normalised minLSTM gates are computed as ``f' = sigmoid(log f - log i)`` and
``i' = 1 - f'`` (equal to the ratios above, finite where ``f + i`` underflows).

Parameters: ``w_x (I, G*H)`` and ``b (G*H,)`` (``G`` = 2 for minGRU, 3 for
minLSTM); there are no recurrent weights. Carry: ``h (*B, H)``; output
``y_t = h_t``. The optional ``rec_mask (*B, H)`` (variational recurrent dropout)
multiplies ``h_{t-1}`` where it enters the update, as there is no recurrent product.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from rnnjax.cells.base import Initializers, LinearRecurrenceCell


def g(x):
    """The paper's positive candidate activation: ``x + 1/2`` for ``x >= 0``, else
    ``sigmoid(x)`` (continuous, with slope 1/4 and 1 on either side of 0)."""
    return jnp.where(x >= 0, x + 0.5, jax.nn.sigmoid(x))


@dataclasses.dataclass(frozen=True)
class MinimalCell(LinearRecurrenceCell):
    """The parameters and candidate shared by minGRU and minLSTM.

    Subclasses define ``num_gates`` (``G``) and `linear_coefficients` for the
    pre-activations ``z (..., G*H)``.

    Besides [`CellBase`][rnnjax.CellBase]'s ``hidden_size`` (``H``), ``dtype`` and
    ``inits`` (defaults Glorot uniform and zeros; no recurrent weights):

    Attributes:
      log_space: the paper's log-space variant (positive candidate ``g(a_h)``);
        computed in linear space, see the module docstring.
    """

    log_space: bool = False

    num_gates = 0

    def _init(self, key, input_size):
        kx, kb = jax.random.split(key)
        width = self.num_gates * self.hidden_size
        return {
            "w_x": self.inits.kernel_or_default()(kx, (input_size, width), jnp.float32),
            "b": self.inits.bias_or_default()(kb, (width,), jnp.float32),
        }

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        return self._zeros(batch_shape, self.hidden_size, dtype)

    def candidate(self, a_h):
        """``h~``: ``g(a_h)`` with ``log_space``, else ``a_h``."""
        return g(a_h) if self.log_space else a_h


@dataclasses.dataclass(frozen=True)
class MinGRU(MinimalCell):
    """minGRU cell; build it with [`rnnjax.min_gru`][rnnjax.min_gru]. Options: those of
    [`MinimalCell`][rnnjax.cells.minimal.MinimalCell]."""

    num_gates = 2

    def linear_coefficients(self, params, z):
        a_z, a_h = jnp.split(z, 2, axis=-1)
        # 1 - sigmoid(a) computed as sigmoid(-a): exact where z is close to 1.
        return jax.nn.sigmoid(-a_z), jax.nn.sigmoid(a_z) * self.candidate(a_h)


@dataclasses.dataclass(frozen=True)
class MinLSTM(MinimalCell):
    """minLSTM cell; build it with `rnnjax.min_lstm`. Options: those of
    [`MinimalCell`][rnnjax.cells.minimal.MinimalCell]."""

    num_gates = 3

    def linear_coefficients(self, params, z):
        a_f, a_i, a_h = jnp.split(z, 3, axis=-1)
        # log f - log i = softplus(-a_i) - softplus(-a_f)
        diff = jax.nn.softplus(-a_i) - jax.nn.softplus(-a_f)
        return jax.nn.sigmoid(diff), jax.nn.sigmoid(-diff) * self.candidate(a_h)


def min_gru(
    hidden_size: int,
    *,
    log_space: bool = False,
    dtype: Any = None,
    kernel_init=None,
    bias_init=None,
) -> MinGRU:
    """minGRU (Feng et al. 2024): a GRU whose update gate and candidate read only
    the input (see the module docstring for the equations).

    Every option is an attribute of `MinGRU` (`MinimalCell`).
    ``kernel_init`` and ``bias_init`` (each ``f(key, shape, dtype)``) make its
    ``inits``.
    """
    return MinGRU(
        hidden_size,
        dtype=dtype,
        inits=Initializers(kernel_init, None, bias_init),
        log_space=log_space,
    )


def min_lstm(
    hidden_size: int,
    *,
    log_space: bool = False,
    dtype: Any = None,
    kernel_init=None,
    bias_init=None,
) -> MinLSTM:
    """minLSTM (Feng et al. 2024): forget and input gates that read only the input,
    normalised to sum to one, and no output gate (module docstring). Every option
    is an attribute of `MinLSTM` (`MinimalCell`); ``kernel_init`` and
    ``bias_init`` make its ``inits``."""
    return MinLSTM(
        hidden_size,
        dtype=dtype,
        inits=Initializers(kernel_init, None, bias_init),
        log_space=log_space,
    )

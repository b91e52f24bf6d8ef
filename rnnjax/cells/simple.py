"""The Elman (simple) RNN.

    h_t = act(x_t @ w_x + b + h_{t-1} @ w_h)            (+ h_{t-1} inside act
                                                        with residual=True)

Parameters: ``w_x (I, H)``, ``w_h (H, H)``, ``b (H,)`` (PyTorch's ``b_ih + b_hh``).
Carry: ``h (*B, H)``; output ``y_t = h_t``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

from rnnjax.cells.base import FusedFormCell, Initializers, resolve_activation


@dataclasses.dataclass(frozen=True)
class SimpleRNN(FusedFormCell):
    """Elman RNN cell; build it with [`rnnjax.simple_rnn`][rnnjax.simple_rnn].

    Besides [`CellBase`][rnnjax.CellBase]'s ``hidden_size`` (``H``), ``dtype`` and
    ``inits`` (defaults Glorot uniform, orthogonal, zeros):

    Attributes:
      activation: ``"tanh"`` (default), ``"relu"`` (PyTorch's two), or a
        callable (Flax's ``activation_fn``).
      residual: add ``h_{t-1}`` to the pre-activation (Flax's ``SimpleCell``
        ``residual``).
    """

    activation: Any = "tanh"
    residual: bool = False

    def __post_init__(self):
        super().__post_init__()
        if not callable(self.activation) and self.activation not in ("tanh", "relu"):
            raise ValueError(
                f"activation: expected 'tanh', 'relu' (PyTorch's two) or a callable, "
                f"got {self.activation!r}"
            )

    def _init(self, key, input_size):
        return self._dense_init(key, input_size, 1)

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        return self._zeros(batch_shape, self.hidden_size, dtype)

    def rec_input(self, carry):
        return carry

    def update(self, pw, carry, z, hw):
        pre = z + hw + carry if self.residual else z + hw
        h = resolve_activation(self.activation, "activation")(pre)
        return h, h


def simple_rnn(
    hidden_size: int,
    activation="tanh",
    *,
    residual: bool = False,
    dtype: Any = None,
    kernel_init=None,
    recurrent_init=None,
    bias_init=None,
) -> SimpleRNN:
    """Elman RNN: ``h_t = act(x_t W_x + b + h_{t-1} W_h)``, ``act`` tanh or relu.

    Every option is an attribute of `SimpleRNN`, documented there.
    ``kernel_init``, ``recurrent_init`` and ``bias_init`` (each ``f(key, shape,
    dtype)``) make its ``inits``.
    """
    return SimpleRNN(
        hidden_size,
        dtype=dtype,
        inits=Initializers(kernel_init, recurrent_init, bias_init),
        activation=activation,
        residual=residual,
    )

"""The GRU (Cho et al. 2014) in both reset placements, and the minimal gated unit.

GRU, gate order ``r, z, n`` (PyTorch's), with ``a = x_t W_x + b``:

    r_t = sigmoid(a_r + h_{t-1} W_hr)
    z_t = sigmoid(a_z + h_{t-1} W_hz)
    n_t = tanh(a_n + r_t * (h_{t-1} W_hn + b_hn))      reset_after=True
    n_t = tanh(a_n + (r_t * h_{t-1}) W_hn)             reset_after=False (Cho et al.)
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

Parameters: ``w_x (I, 3H)``, ``w_h (H, 3H)``, ``b (3H,)`` (PyTorch's ``b_ih + b_hh``
for ``r, z``; ``b_in`` for ``n``) and, with ``reset_after=True``, ``b_hn (H,)``.

MGU (Zhou et al. 2016), gate order ``f, n``:

    f_t = sigmoid(a_f + h_{t-1} W_hf)
    n_t = tanh(a_n + (f_t * h_{t-1}) W_hn)
    h_t = (1 - f_t) * h_{t-1} + f_t * n_t

and Flax's ``MGUCell`` (``reset_after=True, gate_keeps=True``), in which the gate
is the share of ``h_{t-1}`` kept and the reset comes after the product, with its
own bias ``b_hn (H,)``:

    n_t = tanh(a_n + f_t * (h_{t-1} W_hn + b_hn))
    h_t = (1 - f_t) * n_t + f_t * h_{t-1}

``reset_gate=False`` drops the reset: ``n_t = tanh(a_n + h_{t-1} W_hn)`` (no
``b_hn``). ``sigmoid`` and ``tanh`` are the defaults of ``gate_activation`` and
``activation`` (GRU and MGU).

Carry of both: ``h (*B, H)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from rnnjax.cells.base import (
    CellBase,
    FusedFormCell,
    Initializers,
    expand,
    linear,
    mask_operand,
    resolve_activation,
)


def _activations(cell):
    """``(gate activation, candidate activation)`` of a GRU or MGU cell, as
    functions (raises naming the field for an unknown name)."""
    return (
        resolve_activation(cell.gate_activation, "gate_activation"),
        resolve_activation(cell.activation, "activation"),
    )


@dataclasses.dataclass(frozen=True)
class GRU(FusedFormCell):
    """GRU cell; build it with `rnnjax.gru`.

    Besides [`CellBase`][rnnjax.CellBase]'s ``hidden_size`` (``H``), ``dtype`` and
    ``inits`` (defaults Glorot uniform, orthogonal per gate, zeros):

    Attributes:
      reset_after: ``True`` (cuDNN, PyTorch and Keras default; fused kernels)
        applies the reset gate after the recurrent product, with its own bias
        ``b_hn``; ``False`` is Cho et al. 2014's form (reset before the product;
        scan path).
      gate_activation: of ``r`` and ``z``: ``"sigmoid"`` (default), another name
        or a callable (Flax's ``gate_fn``).
      activation: of ``n``: ``"tanh"`` (default), another name or a callable
        (Flax's ``activation_fn``).
    """

    reset_after: bool = True
    gate_activation: Any = "sigmoid"
    activation: Any = "tanh"

    def __post_init__(self):
        super().__post_init__()
        _activations(self)  # an unknown name raises here

    @property
    def fusable(self) -> bool:
        """The fused form with ``reset_after=True`` only (Cho et al.'s reset before
        the product multiplies the operand by a gate of this step)."""
        return self.reset_after

    def _init(self, key, input_size):
        params = self._dense_init(key, input_size, 3)
        if self.reset_after:
            params["b_hn"] = self.inits.bias_or_default()(
                jax.random.fold_in(key, 1), (self.hidden_size,), jnp.float32
            )
        return params

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        return self._zeros(batch_shape, self.hidden_size, dtype)

    def rec_input(self, carry):
        return carry

    def pointwise_params(self, params):
        return {"b_hn": params["b_hn"]}

    def update(self, pw, carry, z, hw):
        a_r, a_z, a_n = jnp.split(z, 3, axis=-1)
        h_r, h_z, h_n = jnp.split(hw, 3, axis=-1)
        sigma, act = _activations(self)
        r = sigma(a_r + h_r)
        u = sigma(a_z + h_z)
        n = act(a_n + r * (h_n + expand(pw["b_hn"], h_n.ndim)))
        h = (1.0 - u) * n + u * carry
        return h, h

    def recur(self, params, carry, z, rec_mask=None):
        if self.reset_after:
            return super().recur(params, carry, z, rec_mask)
        H = self.hidden_size
        w_rz, w_n = params["w_h"][:, : 2 * H], params["w_h"][:, 2 * H :]
        a_r, a_z, a_n = jnp.split(z, 3, axis=-1)
        h_r, h_z = jnp.split(
            linear(mask_operand(carry, rec_mask), w_rz, self.dtype), 2, -1
        )
        sigma, act = _activations(self)
        r = sigma(a_r + h_r)
        u = sigma(a_z + h_z)
        n = act(a_n + linear(mask_operand(r * carry, rec_mask), w_n, self.dtype))
        h = (1.0 - u) * n + u * carry
        return h, h


@dataclasses.dataclass(frozen=True)
class MGU(CellBase):
    """Minimal gated unit; build it with [`rnnjax.mgu`][rnnjax.mgu].

    Besides [`CellBase`][rnnjax.CellBase]'s ``hidden_size`` (``H``), ``dtype`` and
    ``inits`` (defaults Glorot uniform, orthogonal per gate, zeros):

    Attributes:
      reset_gate: the gate resets the state in ``n_t`` (default); ``False``
        leaves it out.
      reset_after: the reset multiplies ``h_{t-1} W_hn + b_hn`` (Flax's form, with
        the bias ``b_hn``) rather than ``h_{t-1}`` before the product.
      gate_keeps: ``h_t = (1 - f_t) n_t + f_t h_{t-1}`` (Flax's form: the gate
        keeps the state) rather than Zhou et al.'s ``(1 - f_t) h_{t-1} + f_t n_t``.
      gate_activation: of ``f``: ``"sigmoid"`` (default), a name or a callable.
      activation: of ``n``: ``"tanh"`` (default), a name or a callable.
    """

    reset_gate: bool = True
    reset_after: bool = False
    gate_keeps: bool = False
    gate_activation: Any = "sigmoid"
    activation: Any = "tanh"

    def __post_init__(self):
        super().__post_init__()
        _activations(self)  # an unknown name raises here

    @property
    def has_b_hn(self) -> bool:
        """Whether the parameters hold ``b_hn`` (a reset after the product)."""
        return self.reset_gate and self.reset_after

    def _init(self, key, input_size):
        params = self._dense_init(key, input_size, 2)
        if self.has_b_hn:
            params["b_hn"] = self.inits.bias_or_default()(
                jax.random.fold_in(key, 1), (self.hidden_size,), jnp.float32
            )
        return params

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        return self._zeros(batch_shape, self.hidden_size, dtype)

    def recur(self, params, carry, z, rec_mask=None):
        H = self.hidden_size
        sigma, act = _activations(self)
        w_f, w_n = params["w_h"][:, :H], params["w_h"][:, H:]
        a_f, a_n = jnp.split(z, 2, axis=-1)
        h_in = mask_operand(carry, rec_mask)
        f = sigma(a_f + linear(h_in, w_f, self.dtype))
        if not self.reset_gate:
            n = act(a_n + linear(h_in, w_n, self.dtype))
        elif self.reset_after:
            h_n = linear(h_in, w_n, self.dtype)
            n = act(a_n + f * (h_n + expand(params["b_hn"], h_n.ndim)))
        else:
            n = act(a_n + linear(mask_operand(f * carry, rec_mask), w_n, self.dtype))
        if self.gate_keeps:
            h = (1.0 - f) * n + f * carry
        else:
            h = (1.0 - f) * carry + f * n
        return h, h


def _inits(kernel_init, recurrent_init, bias_init):
    return Initializers(kernel_init, recurrent_init, bias_init)


def gru(
    hidden_size: int,
    reset_after: bool = True,
    *,
    gate_activation="sigmoid",
    activation="tanh",
    dtype: Any = None,
    kernel_init=None,
    recurrent_init=None,
    bias_init=None,
) -> GRU:
    """A GRU cell (see the module docstring for the equations).

    Every option is an attribute of [`GRU`][rnnjax.cells.gru.GRU], documented there.
    ``kernel_init``, ``recurrent_init`` and ``bias_init`` (each ``f(key, shape,
    dtype)``) make its ``inits``.
    """
    return GRU(
        hidden_size,
        dtype=dtype,
        inits=_inits(kernel_init, recurrent_init, bias_init),
        reset_after=reset_after,
        gate_activation=gate_activation,
        activation=activation,
    )


def mgu(
    hidden_size: int,
    *,
    reset_gate: bool = True,
    reset_after: bool = False,
    gate_keeps: bool = False,
    gate_activation="sigmoid",
    activation="tanh",
    dtype: Any = None,
    kernel_init=None,
    recurrent_init=None,
    bias_init=None,
) -> MGU:
    """Minimal gated unit (Zhou, Wu, Zhang & Zhou 2016): a GRU whose single forget
    gate plays both the reset and the update role. Every option is an attribute
    of `MGU`; ``kernel_init``, ``recurrent_init`` and ``bias_init`` make its
    ``inits``."""
    return MGU(
        hidden_size,
        dtype=dtype,
        inits=_inits(kernel_init, recurrent_init, bias_init),
        reset_gate=reset_gate,
        reset_after=reset_after,
        gate_keeps=gate_keeps,
        gate_activation=gate_activation,
        activation=activation,
    )

"""The depth-gated LSTM (Yao, Cohn, Vylomova, Duh & Dyer 2015, "Depth-Gated LSTM").

A stack of ``L`` LSTM layers, run bottom to top within each time step, in which a
depth gate ``d`` links the memory cell of layer ``l - 1`` to that of layer ``l`` at
the same step. Layer ``l`` reads ``x^l_t`` (``x_t`` for ``l = 0``, else
``h^{l-1}_t``); with ``a = x^l_t W_x + h^l_{t-1} W_h + b`` split into the gates
``i, f, g, o`` (dropping the layer index on the weights):

    i_t = sigmoid(a_i + p_i * c^l_{t-1})
    f_t = sigmoid(a_f + p_f * c^l_{t-1})
    g_t = tanh(a_g)
    d_t = sigmoid(b_d + x^l_t W_xd + w_cd * c^l_{t-1} + w_ld * c^{l-1}_t)   (l >= 1)
    c^l_t = d_t * c^{l-1}_t + f_t * c^l_{t-1} + i_t * g_t    (no d term for l = 0)
    o_t = sigmoid(a_o + p_o * c^l_t)
    h^l_t = o_t * tanh(c^l_t)

``*`` is elementwise. The peepholes ``p_*`` (Yao et al.'s diagonal ``W_ci, W_cf,
W_co``) are there with ``peephole=True`` (the paper's form, the default); the depth
gate's own ``w_cd`` and ``w_ld`` are always there. The bottom layer is a (peephole)
LSTM; with ``num_layers=1`` the cell is exactly that. The output is the top layer's
``h``.

Parameters: a tuple over layers of dicts; layer ``l`` has ``w_x (I or H, 4H)``,
``w_h (H, 4H)``, ``b (4H,)`` (the forget block starts at ``forget_bias``), with
``peephole=True`` ``peephole_i|f|o (H,)``, and for ``l >= 1`` the depth gate's
``w_xd (H, H)`` (a kernel weight), ``b_d (H,)`` (a bias; zeros by default),
``w_cd (H,)`` and ``w_ld (H,)`` (small uniform, as the peepholes). Carry: a tuple
over layers of [`LSTMState`][rnnjax.LSTMState] ``(c, h)``, each ``(*B, H)`` (``gates``
is None).

``project`` is layer 0's input product (``unroll`` hoists it over all steps); the
upper layers' input products depend on the layer below at the same step and run
inside ``recur``. A recurrent-dropout mask is ``(*B, L*H)``: layer ``l``'s block
multiplies ``h^l_{t-1}`` where it enters ``W_h``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from rnnjax.cells.base import (
    CellBase,
    Initializers,
    check_positive_int,
    expand,
    linear,
    mask_operand,
    split_gates,
)
from rnnjax.cells.lstm import LSTMState

GATES = ("i", "f", "g", "o")


@dataclasses.dataclass(frozen=True)
class DepthGatedLSTM(CellBase):
    """A depth-gated LSTM stack as one cell; build it with
    [`rnnjax.depth_gated_lstm`][rnnjax.depth_gated_lstm].

    Besides [`CellBase`][rnnjax.CellBase]'s ``hidden_size`` (``H``, the size of every
    layer's cell state), ``dtype`` and ``inits`` (defaults Glorot uniform for
    ``w_x`` and ``w_xd``, orthogonal per gate for ``w_h``, zeros for ``b`` (plus
    ``forget_bias``) and ``b_d``):

    Attributes:
      num_layers: ``L``, the depth; layers ``1 .. L-1`` have a depth gate.
      peephole: diagonal peepholes on ``i, f, o`` in every layer (Yao et al.'s
        form). The depth gate always peeps at both cells.
      forget_bias: added to every layer's forget-gate bias at initialisation.
    """

    num_layers: int = 2
    peephole: bool = True
    forget_bias: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        check_positive_int(self.num_layers, "num_layers")

    # ---------------------------------------------------------------- contract

    def _init(self, key, input_size):
        return tuple(
            self._init_layer(jax.random.fold_in(key, l), input_size if l == 0 else None)
            for l in range(self.num_layers)
        )

    def _init_layer(self, key, input_size):
        """Layer parameters; ``input_size`` None for the (depth-gated) upper layers."""
        H = self.hidden_size
        kd, kp, kx, kb, kc = jax.random.split(key, 5)
        params = self._dense_init(kd, input_size or H, len(GATES))
        shift = jnp.zeros((len(GATES), H)).at[GATES.index("f")].set(self.forget_bias)
        params["b"] = params["b"] + shift.reshape(-1)
        small = lambda k: 0.1 * jax.random.uniform(k, (H,), minval=-1.0, maxval=1.0)
        if self.peephole:
            for name, k in zip("ifo", jax.random.split(kp, 3), strict=True):
                params[f"peephole_{name}"] = small(k)
        if input_size is None:
            params["w_xd"] = self.inits.kernel_or_default()(kx, (H, H), jnp.float32)
            params["b_d"] = self.inits.bias_or_default()(kb, (H,), jnp.float32)
            kcd, kld = jax.random.split(kc)
            params["w_cd"], params["w_ld"] = small(kcd), small(kld)
        return params

    def _in(self, params) -> int:
        return params[0]["w_x"].shape[0]

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        """Zero carries, one `LSTMState` ``(c, h)`` per layer."""
        zeros = self._zeros(batch_shape, self.hidden_size, dtype)
        return tuple(LSTMState(zeros, zeros) for _ in range(self.num_layers))

    def rec_width(self, params) -> int:
        return self.num_layers * self.hidden_size

    def project_split(self, params, x):
        """Layer 0's input product ``(x W_x, b)``: ``(..., I) -> (..., 4H)``."""
        w_x = params[0]["w_x"]
        if x.shape[-1:] != w_x.shape[:1]:
            raise ValueError(
                f"x: expected {w_x.shape[0]} input features (the size the params "
                f"were initialised for) on the last axis, got shape {tuple(x.shape)}"
            )
        return linear(x, w_x, self.dtype), params[0]["b"]

    def recur(self, params, carry, z, rec_mask=None):
        """One step of every layer, bottom to top, on layer 0's ``z (*B, 4H)``."""
        H = self.hidden_size
        if not isinstance(carry, (tuple, list)) or len(carry) != self.num_layers:
            raise ValueError(
                f"carry: expected a tuple of {self.num_layers} LSTMState (one per "
                f"layer), got {type(carry).__name__}"
            )
        states, below = [], None
        for l, (p, state) in enumerate(zip(params, carry, strict=True)):
            mask = None if rec_mask is None else rec_mask[..., l * H : (l + 1) * H]
            hw = linear(mask_operand(state.h, mask), p["w_h"], self.dtype)
            if below is None:
                a = z + hw
            else:
                x = below.h
                a = linear(x, p["w_x"], self.dtype) + expand(p["b"], hw.ndim) + hw
            below = self._layer_update(p, state, split_gates(a, GATES), below)
            states.append(below)
        return tuple(states), below.h

    def _layer_update(self, p, state, a, below):
        """The gate arithmetic of one layer; ``below`` is the layer underneath's new
        state (None for layer 0)."""
        c_prev = state.c
        ndim = c_prev.ndim

        def gate(name, cell):
            pre = a[name]
            if self.peephole:
                pre = pre + expand(p[f"peephole_{name}"], ndim) * cell
            return jax.nn.sigmoid(pre)

        c = gate("f", c_prev) * c_prev + gate("i", c_prev) * jnp.tanh(a["g"])
        if below is not None:
            d = jax.nn.sigmoid(
                linear(below.h, p["w_xd"], self.dtype)
                + expand(p["b_d"], ndim)
                + expand(p["w_cd"], ndim) * c_prev
                + expand(p["w_ld"], ndim) * below.c
            )
            c = c + d * below.c
        h = gate("o", c) * jnp.tanh(c)
        return LSTMState(c, h)


def depth_gated_lstm(
    hidden_size: int,
    num_layers: int,
    *,
    peephole: bool = True,
    forget_bias: float = 1.0,
    dtype: Any = None,
    kernel_init=None,
    recurrent_init=None,
    bias_init=None,
) -> DepthGatedLSTM:
    """A depth-gated LSTM stack, as one cell (see the module docstring).
    Every option is an attribute of `DepthGatedLSTM`, documented there.
    ``kernel_init``, ``recurrent_init`` and ``bias_init`` (each ``f(key, shape,
    dtype)``) make its ``inits``.
    """
    return DepthGatedLSTM(
        hidden_size,
        dtype=dtype,
        inits=Initializers(kernel_init, recurrent_init, bias_init),
        num_layers=num_layers,
        peephole=bool(peephole),
        forget_bias=forget_bias,
    )

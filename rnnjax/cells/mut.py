"""MUT1, MUT2 and MUT3: the three architectures found by Jozefowicz, Zaremba &
Sutskever 2015 ("An Empirical Exploration of Recurrent Network Architectures").

MUT1:

    z = sigmoid(x W_xz + b_z)
    r = sigmoid(x W_xr + h W_hr + b_r)
    h' = tanh((r * h) W_hh + tanh(x) + b_h) * z + h * (1 - z)

MUT2:

    z = sigmoid(x W_xz + h W_hz + b_z)
    r = sigmoid(x + h W_hr + b_r)
    h' = tanh((r * h) W_hh + x W_xh + b_h) * z + h * (1 - z)

MUT3:

    z = sigmoid(x W_xz + tanh(h) W_hz + b_z)
    r = sigmoid(x W_xr + h W_hr + b_r)
    h' = tanh((r * h) W_hh + x W_xh + b_h) * z + h * (1 - z)

MUT1 and MUT2 add ``x`` itself to a hidden-size vector, so they need ``I == H``.
For other input sizes pass ``embed_input=True``: a learned linear embedding
``w_e (I, H)`` maps the inputs to size ``H`` first (the paper's models embed their
inputs too), and every ``x`` above is then the embedded input.

Options (attributes of `MUT1`, `MUT2` and `MUT3`), besides
[`CellBase`][rnnjax.CellBase]'s ``hidden_size`` (``H``), ``dtype`` and ``inits``
(defaults Glorot uniform, orthogonal per block, zeros): ``embed_input``, the
learned ``(I, H)`` input embedding above (default ``False``). The factories
`mut1`, `mut2`, `mut3` take the same options, and
``kernel_init``, ``recurrent_init`` and ``bias_init`` (each ``f(key, shape,
dtype)``) that make ``inits``.

Parameters (gate blocks in the order listed): MUT1 ``w_x (H|I, 2H) [z, r]``,
``w_h (H, 2H) [r, h]``; MUT2 ``w_x [z, h]``, ``w_h (H, 3H) [z, r, h]``; MUT3
``w_x [z, r, h]``, ``w_h [z, r, h]``; each ``b (3H,) [z, r, h]``; ``w_e`` when
embedding. Carry ``h (*B, H)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from rnnjax.cells.base import CellBase, Initializers, linear, mask_operand


@dataclasses.dataclass(frozen=True)
class _MUT(CellBase):
    embed_input: bool = False

    variant = 0
    x_gates = 0  # columns of w_x, in units of H
    h_gates = 0  # columns of w_h, in units of H
    uses_raw_x = True

    def _init(self, key, input_size):
        H = self.hidden_size
        if self.uses_raw_x and not self.embed_input and input_size != H:
            raise ValueError(
                f"input_size: MUT{self.variant} adds the input itself to a "
                f"hidden-size vector, so expected input_size == hidden_size == {H}, "
                f"got {input_size}; pass embed_input=True to learn an (I, H) "
                "input embedding"
            )
        ke, kx, kh, kb = jax.random.split(key, 4)
        params = {}
        x_size = input_size
        if self.embed_input:
            params["w_e"] = self.inits.kernel_or_default()(
                ke, (input_size, H), jnp.float32
            )
            x_size = H
        params["w_x"] = self.inits.kernel_or_default()(
            kx, (x_size, self.x_gates * H), jnp.float32
        )
        params["w_h"] = self.inits.recurrent_or_default(self.h_gates)(
            kh, (H, self.h_gates * H), jnp.float32
        )
        params["b"] = self.inits.bias_or_default()(kb, (3 * H,), jnp.float32)
        return params

    def _in(self, params):
        return params["w_e" if self.embed_input else "w_x"].shape[0]

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        return self._zeros(batch_shape, self.hidden_size, dtype)

    def _embed(self, params, x):
        return linear(x, params["w_e"], self.dtype) if self.embed_input else x

    def _mix(self, params, h, z, r, a_h, rec_mask):
        """``tanh((r*h) W_hh + a_h) * z + h * (1 - z)``, W_hh the last block."""
        w_hh = params["w_h"][:, -self.hidden_size :]
        n = jnp.tanh(linear(mask_operand(r * h, rec_mask), w_hh, self.dtype) + a_h)
        h = n * z + h * (1.0 - z)
        return h, h


@dataclasses.dataclass(frozen=True)
class MUT1(_MUT):
    """The MUT1 cell (equations and options in the module docstring); build it
    with [`mut1`][rnnjax.cells.mut.mut1]."""

    variant, x_gates, h_gates = 1, 2, 2

    def project_split(self, params, x):
        x = self._embed(params, x)
        zr = linear(x, params["w_x"], self.dtype)
        return jnp.concatenate([zr, jnp.tanh(x).astype(zr.dtype)], -1), params["b"]

    def recur(self, params, carry, z, rec_mask=None):
        a_z, a_r, a_h = jnp.split(z, 3, axis=-1)
        w_hr = params["w_h"][:, : self.hidden_size]
        r = jax.nn.sigmoid(
            a_r + linear(mask_operand(carry, rec_mask), w_hr, self.dtype)
        )
        return self._mix(params, carry, jax.nn.sigmoid(a_z), r, a_h, rec_mask)


@dataclasses.dataclass(frozen=True)
class MUT2(_MUT):
    """The MUT2 cell (equations and options in the module docstring); build it
    with [`mut2`][rnnjax.cells.mut.mut2]."""

    variant, x_gates, h_gates = 2, 2, 3

    def project_split(self, params, x):
        x = self._embed(params, x)
        a_z, a_h = jnp.split(linear(x, params["w_x"], self.dtype), 2, axis=-1)
        return jnp.concatenate([a_z, x.astype(a_z.dtype), a_h], axis=-1), params["b"]

    def recur(self, params, carry, z, rec_mask=None):
        H = self.hidden_size
        a_z, a_r, a_h = jnp.split(z, 3, axis=-1)
        h_z, h_r = jnp.split(
            linear(
                mask_operand(carry, rec_mask), params["w_h"][:, : 2 * H], self.dtype
            ),
            2,
            -1,
        )
        zg, r = jax.nn.sigmoid(a_z + h_z), jax.nn.sigmoid(a_r + h_r)
        return self._mix(params, carry, zg, r, a_h, rec_mask)


@dataclasses.dataclass(frozen=True)
class MUT3(_MUT):
    """The MUT3 cell (equations and options in the module docstring); build it
    with [`mut3`][rnnjax.cells.mut.mut3]."""

    variant, x_gates, h_gates = 3, 3, 3
    uses_raw_x = False

    def project_split(self, params, x):
        return super().project_split(params, self._embed(params, x))

    def recur(self, params, carry, z, rec_mask=None):
        H = self.hidden_size
        a_z, a_r, a_h = jnp.split(z, 3, axis=-1)
        w_hz, w_hr = params["w_h"][:, :H], params["w_h"][:, H : 2 * H]
        zg = jax.nn.sigmoid(
            a_z + linear(mask_operand(jnp.tanh(carry), rec_mask), w_hz, self.dtype)
        )
        r = jax.nn.sigmoid(
            a_r + linear(mask_operand(carry, rec_mask), w_hr, self.dtype)
        )
        return self._mix(params, carry, zg, r, a_h, rec_mask)


def _make(cls, hidden_size, embed_input, dtype, kernel_init, recurrent_init, bias_init):
    return cls(
        hidden_size,
        dtype=dtype,
        inits=Initializers(kernel_init, recurrent_init, bias_init),
        embed_input=embed_input,
    )


def mut1(
    hidden_size: int,
    *,
    embed_input: bool = False,
    dtype: Any = None,
    kernel_init=None,
    recurrent_init=None,
    bias_init=None,
) -> MUT1:
    """MUT1 of Jozefowicz et al. 2015 (needs ``I == H`` or ``embed_input=True``).
    Options in the module docstring."""
    args = (embed_input, dtype, kernel_init, recurrent_init, bias_init)
    return _make(MUT1, hidden_size, *args)


def mut2(
    hidden_size: int,
    *,
    embed_input: bool = False,
    dtype: Any = None,
    kernel_init=None,
    recurrent_init=None,
    bias_init=None,
) -> MUT2:
    """MUT2 of Jozefowicz et al. 2015 (needs ``I == H`` or ``embed_input=True``).
    Options in the module docstring."""
    args = (embed_input, dtype, kernel_init, recurrent_init, bias_init)
    return _make(MUT2, hidden_size, *args)


def mut3(
    hidden_size: int,
    *,
    embed_input: bool = False,
    dtype: Any = None,
    kernel_init=None,
    recurrent_init=None,
    bias_init=None,
) -> MUT3:
    """MUT3 of Jozefowicz et al. 2015 (any input size). Options in the module
    docstring."""
    args = (embed_input, dtype, kernel_init, recurrent_init, bias_init)
    return _make(MUT3, hidden_size, *args)

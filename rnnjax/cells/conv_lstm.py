"""The convolutional LSTM (Shi et al. 2015, "Convolutional LSTM Network").

Inputs ``x_t`` are channels-last feature maps ``(*B, *S, I)`` (``S`` the spatial shape,
one to three dimensions; ``I`` input channels); the state has the same spatial shape
with ``H`` channels. With ``*`` the convolution with "SAME" padding, stride 1 (computed,
as in every deep-learning framework, as a cross-correlation: Shi et al.'s kernels
flipped) and ``a = x_t * W_x + h_{t-1} * W_h + b`` split into the gates ``i, f, g, o``:

    i_t = sigmoid(a_i + p_i . c_{t-1})
    f_t = sigmoid(a_f + p_f . c_{t-1})
    g_t = tanh(a_g)
    c_t = f_t . c_{t-1} + i_t . g_t
    o_t = sigmoid(a_o + p_o . c_t)
    h_t = o_t . tanh(c_t)

(``.`` the Hadamard product). The peepholes ``p_*`` are Shi et al.'s ``W_ci, W_cf,
W_co``: with ``peephole=True`` one weight per position and channel, ``(*S, H)``,
as in the paper, so the cell needs its ``spatial_shape``; with
``peephole="channel"`` one weight per channel, ``(H,)`` (any spatial size, as the
dense LSTM's diagonal peepholes); with ``peephole=False`` none.

"SAME" padding keeps the spatial shape (the state must keep it from step to step);
for an even kernel size ``k`` the extra zero goes after: ``(k - 1) // 2`` before,
``k // 2`` after (XLA's and TensorFlow's convention).

Parameters: ``w_x (*W, I, 4H)`` and ``w_h (*W, H, 4H)`` (``W`` the kernel size;
channels-last "HWIO" layout, as Keras' ``ConvLSTM2D``), ``b (4H,)`` (the forget
block starts at ``forget_bias``), optional ``peephole_i|f|o``. Carry:
[`LSTMState`][rnnjax.LSTMState] ``(c, h)``, each ``(*B, *S, H)`` (``gates`` is None).

Batch shape: ``initial_carry(batch_shape)`` takes the leading dimensions of
``x_t`` without the channel axis, **spatial dimensions included**:
``initial_carry(x_t.shape[:-1])``, as for every rnnjax cell. That is also what
``rnnjax.unroll(..., time_major=True)`` passes, so the cell runs under ``unroll``
on ``xs (T, *B, *S, I)``. (Batch-first ``xs`` is not supported by ``unroll``: it
takes the time axis to be ``-2``.) ``project`` convolves inputs with any number of
leading dimensions at once (they are flattened into one batch), so ``unroll``
hoists the input convolution of every step out of the loop.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax.cells.base import (
    CellBase,
    Initializers,
    check_positive_int,
    expand,
    mask_operand,
    split_gates,
)
from rnnjax.cells.lstm import LSTMState

GATES = ("i", "f", "g", "o")
_SPATIAL_LETTERS = "DHW"  # names of the spatial axes in lax's dimension numbers


def conv(x, w, dtype=None):
    """Stride-1 "SAME" cross-correlation of ``x (..., *S, I)`` with ``w (*W, I, n)``.

    Any leading dimensions (flattened into one batch for ``lax.conv_general_dilated``).
    Operands are cast to ``dtype`` when given; the result is float32 (or ``x``'s
    dtype when wider), as `rnnjax.cells.base.linear`.
    """
    d = w.ndim - 2
    lead, tail = x.shape[: x.ndim - d - 1], x.shape[x.ndim - d - 1 :]
    out_dtype = jnp.promote_types(jnp.float32, x.dtype)
    if dtype is not None:
        x, w = x.astype(dtype), w.astype(dtype)
    else:
        w = w.astype(x.dtype)
    s = _SPATIAL_LETTERS[-d:]
    y = lax.conv_general_dilated(
        x.reshape((math.prod(lead), *tail)),
        w,
        window_strides=(1,) * d,
        padding="SAME",
        dimension_numbers=(f"N{s}C", f"{s}IO", f"N{s}C"),
        preferred_element_type=out_dtype,
    )
    return y.reshape((*lead, *y.shape[1:]))


@dataclasses.dataclass(frozen=True)
class ConvLSTM(CellBase):
    """ConvLSTM cell; build it with `rnnjax.conv_lstm`.

    Besides [`CellBase`][rnnjax.CellBase]'s ``hidden_size`` (``H``, the channels of the
    cell state and output), ``dtype`` (of the convolutions) and ``inits`` (for
    ``w_x``, ``w_h`` and ``b``; defaults Glorot uniform (fan-in
    ``prod(W) * I``), one orthogonal ``(prod(W) * H, H)`` matrix per gate, zeros
    plus ``forget_bias``):

    Attributes:
      kernel_size: ``W``, one size per spatial axis (1 to 3 axes); the input and
        recurrent convolutions share it.
      spatial_shape: ``S``, the spatial shape of the inputs, e.g. ``(64, 64)``.
        Needed by ``peephole=True``; when given, inputs and carries of another
        spatial shape are an error.
      peephole: ``True`` (Shi et al.): Hadamard peepholes ``(*S, H)``, one weight
        per position and channel; ``"channel"``: one weight per channel ``(H,)``;
        ``False``: none.
      forget_bias: added to the forget gate's bias at initialisation.
    """

    kernel_size: tuple[int, ...] = (3, 3)
    spatial_shape: tuple[int, ...] | None = None
    peephole: bool | str = True
    forget_bias: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= len(self.kernel_size) <= 3:
            raise ValueError(
                f"kernel_size: expected 1 to 3 spatial dimensions, got "
                f"{self.kernel_size!r}"
            )
        for k in self.kernel_size:
            check_positive_int(k, "kernel_size")
        if not any(self.peephole is p for p in (True, False)) and (
            self.peephole != "channel"
        ):
            raise ValueError(
                f"peephole: expected True, False or 'channel', got {self.peephole!r}"
            )
        if self.spatial_shape is not None:
            if len(self.spatial_shape) != self.spatial_dims:
                raise ValueError(
                    f"spatial_shape: expected {self.spatial_dims} dimension(s) (as "
                    f"kernel_size {self.kernel_size}), got {self.spatial_shape!r}"
                )
            for n in self.spatial_shape:
                check_positive_int(n, "spatial_shape")
        elif self.peephole is True:
            raise ValueError(
                "spatial_shape: peephole=True gives one peephole weight per position "
                "(Shi et al.), so the cell needs the spatial shape of its inputs; "
                "pass spatial_shape=(...), or peephole='channel' (one weight per "
                "channel) or peephole=False; got spatial_shape=None"
            )

    @property
    def spatial_dims(self) -> int:
        return len(self.kernel_size)

    @property
    def event_ndim(self) -> int:
        """A step's input is ``(*S, I)``: ``unroll`` finds time before these axes."""
        return 1 + self.spatial_dims

    @property
    def hidden_channels(self) -> int:
        return self.hidden_size

    # ---------------------------------------------------------------- contract

    def _init(self, key, input_size):
        kx, kh, kb, kp = jax.random.split(key, 4)
        H, K = self.hidden_size, self.kernel_size
        w_x = self.inits.kernel_or_default()(kx, (*K, input_size, 4 * H), jnp.float32)
        if self.inits.recurrent is not None:
            w_h = self.inits.recurrent(kh, (*K, H, 4 * H), jnp.float32)
        else:  # one orthogonal (prod(W) * H, H) matrix per gate, as the dense cells
            ortho = jax.nn.initializers.orthogonal()
            keys = jax.random.split(kh, len(GATES))
            w_h = jnp.concatenate([ortho(k, (*K, H, H)) for k in keys], axis=-1)
        b = self.inits.bias_or_default()(kb, (4 * H,), jnp.float32)
        b = b + jnp.zeros((4, H)).at[GATES.index("f")].set(self.forget_bias).ravel()
        params = {"w_x": w_x, "w_h": w_h, "b": b}
        if self.peephole:
            shape = (*self.spatial_shape, H) if self.peephole is True else (H,)
            for name, k in zip("ifo", jax.random.split(kp, 3), strict=True):
                params[f"peephole_{name}"] = 0.1 * jax.random.uniform(
                    k, shape, minval=-1.0, maxval=1.0
                )
        return params

    def _in(self, params) -> int:
        return params["w_x"].shape[-2]

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        """Zero ``LSTMState(c, h)`` of shape ``(*batch_shape, H)``.

        ``batch_shape`` is ``x_t.shape[:-1]``: the batch dimensions followed by
        the spatial ones (see the module docstring).
        """
        batch_shape = tuple(batch_shape)
        self._check_spatial(batch_shape, "batch_shape")
        zeros = self._zeros(batch_shape, self.hidden_size, dtype)
        return LSTMState(c=zeros, h=zeros)

    def project_split(self, params, x):
        """``(x * W_x, b)``: ``(..., *S, I) -> (..., *S, 4H)``, any leading dims."""
        self._check_spatial(x.shape[:-1], "x")
        channels = self._in(params)
        if x.shape[-1] != channels:
            raise ValueError(
                f"x: expected {channels} input channels (the size the params were "
                f"initialised for) on the last axis, got shape {tuple(x.shape)}"
            )
        return conv(x, params["w_x"], self.dtype), params["b"]

    def recur(self, params, carry, z, rec_mask=None):
        """One step on ``z (*B, *S, 4H)`` (from `project`); ``rec_mask``
        (optional, ``(*B, *S, H)``) multiplies ``h_{t-1}`` where it enters the
        recurrent convolution."""
        c_prev, h_prev = carry.c, carry.h
        expected = (*z.shape[:-1], self.hidden_size)
        if c_prev.shape != expected or h_prev.shape != expected:
            raise ValueError(
                f"carry: expected c and h of shape {expected} (z's leading dims), "
                f"got {tuple(c_prev.shape)} and {tuple(h_prev.shape)}"
            )
        hw = conv(mask_operand(h_prev, rec_mask), params["w_h"], self.dtype)
        a = split_gates(z + hw, GATES)

        def gate(name, cell):
            pre = a[name]
            if self.peephole:
                pre = pre + expand(params[f"peephole_{name}"], cell.ndim) * cell
            return jax.nn.sigmoid(pre)

        i, f = gate("i", c_prev), gate("f", c_prev)
        c = f * c_prev + i * jnp.tanh(a["g"])
        h = gate("o", c) * jnp.tanh(c)
        return LSTMState(c, h), h

    # ---------------------------------------------------------------- checks

    def _check_spatial(self, shape, argname: str) -> None:
        """``shape`` (leading dims of ``x_t``) ends in the spatial dimensions."""
        d = self.spatial_dims
        if len(shape) < d or (
            self.spatial_shape is not None
            and tuple(shape[len(shape) - d :]) != tuple(self.spatial_shape)
        ):
            what = (
                f"spatial shape {tuple(self.spatial_shape)}"
                if self.spatial_shape is not None
                else f"{d} spatial dimension(s)"
            )
            shown = shape if argname == "batch_shape" else (*shape, "I")
            raise ValueError(
                f"{argname}: expected leading dims (*B, *S) ending in the {what}, "
                f"got {tuple(shown)}"
            )


def conv_lstm(
    hidden_channels: int,
    kernel_size: int | tuple[int, ...],
    *,
    spatial_dims: int | None = None,
    spatial_shape: tuple[int, ...] | None = None,
    peephole: bool | str = True,
    forget_bias: float = 1.0,
    padding: str = "SAME",
    dtype: Any = None,
    kernel_init=None,
    recurrent_init=None,
    bias_init=None,
) -> ConvLSTM:
    """A ConvLSTM cell (see the module docstring for the equations and layout).

    Every option is an attribute of `ConvLSTM`, documented there; this
    function adds:

    Args:
      hidden_channels: ``hidden_size``, under the name of the channels it counts.
      kernel_size: also an int, the same size along every spatial axis.
      spatial_dims: 1, 2 or 3, for an int ``kernel_size``; inferred from a tuple
        ``kernel_size`` or from ``spatial_shape``, else 2.
      padding: ``"SAME"`` only (the state keeps the spatial shape of the input).
      kernel_init: initialisers ``f(key, shape, dtype)``
        that make ``inits``.
      recurrent_init: as ``kernel_init``.
      bias_init: as ``kernel_init``.
    """
    if spatial_dims not in (None, 1, 2, 3):
        raise ValueError(
            f"spatial_dims: expected 1, 2, 3 or None, got {spatial_dims!r}"
        )
    if isinstance(kernel_size, int):
        dims = spatial_dims or (len(spatial_shape) if spatial_shape else 2)
        kernel_size = (kernel_size,) * dims
    kernel_size = tuple(kernel_size)
    if spatial_dims is not None and spatial_dims != len(kernel_size):
        raise ValueError(
            f"spatial_dims: expected {len(kernel_size)} (one per kernel_size entry) "
            f"or None, got {spatial_dims!r}"
        )
    if not isinstance(padding, str) or padding.upper() != "SAME":
        raise ValueError(
            "padding: expected 'SAME' (the state must keep the spatial shape from "
            f"step to step), got {padding!r}"
        )
    return ConvLSTM(
        hidden_channels,
        dtype=dtype,
        inits=Initializers(kernel_init, recurrent_init, bias_init),
        kernel_size=kernel_size,
        spatial_shape=None if spatial_shape is None else tuple(spatial_shape),
        peephole=peephole,
        forget_bias=forget_bias,
    )

"""Grid LSTM (Kalchbrenner, Danihelka & Graves 2015, "Grid Long Short-Term Memory").

**The N-dimensional block** (`grid_block`). A block takes ``N`` hidden vectors
``h_1 .. h_N`` and ``N`` memory vectors ``m_1 .. m_N`` (each ``(*B, H)``), forms
``Hc = [h_1, ..., h_N]`` (``(*B, N*H)``) and updates every dimension ``i`` with its
own weights ``W_i (N*H, 4H)``, ``b_i (4H,)`` and gates ``i, f, g, o`` read from the
shared ``Hc``:

    a   = Hc W_i + b_i                                  (split into i, f, g, o)
    m'_i = sigmoid(a_f) * m_i + sigmoid(a_i) * tanh(a_g)
    h'_i = sigmoid(a_o) * tanh(m'_i)

This is the standard LSTM form (as TensorFlow's ``GridLSTMCell``); the paper's
equation (1) prints ``h' = tanh(g^o * m')``, which we do not follow. A dimension in
``non_lstm`` is the paper's non-LSTM dimension: a plain transfer
``h'_i = tanh(Hc W_i + b_i)`` with ``W_i (N*H, H)``, ``b_i (H,)``, and no memory
(its ``m`` is passed through unchanged). A ``priority`` dimension ``p`` is computed
first, from the block's inputs, and its new ``h'_p`` then replaces ``h_p`` in ``Hc``
for every other dimension (the paper's prioritised dimensions).

**The 2-D time x depth grid** (`GridLSTM`, `grid_lstm`): a cell whose
carry holds, for each of ``L = depth`` layers, the time dimension's
``LSTMState(c=m^l, h=h^l)``. At step ``t`` the depth dimension starts from the
projected input, ``h^0_depth = x_t W_in`` (no bias; ``project`` hoists it over all
steps) and ``m^0_depth = 0``, and runs bottom to top; layer ``l`` is one 2-D block
with dimensions ``(time, depth)``:

    (h^l_t, m^l_t), (h_depth, m_depth) = block([h^l_{t-1}, h_depth],
                                               [m^l_{t-1}, m_depth], W^l)

and ``y_t`` is the top layer's depth ``h``. ``Hc = [h_time, h_depth]`` in that
order, so rows ``0:H`` of each ``w`` read the time hidden vector, rows ``H:2H`` the
depth one.

Options: ``tied=True`` (the default; the paper ties the weights along depth) uses
one block's weights for every layer, ``tied=False`` one set per layer.
``non_lstm_depth=True`` makes the depth dimension the tanh transfer above (the depth
memory stays zero). ``priority="depth"``: in each block the depth dimension's new
``h'_depth`` is computed first, from ``[h_time, h_depth]``, and the time dimension
then computes its update from ``[h_time, h'_depth]``; ``priority=None`` (the
default) updates both dimensions from the same ``[h_time, h_depth]``.

Parameters (2-D): ``{"w_in": (I, H), "layers": tuple}``; ``layers`` has one entry
(tied) or ``L`` (untied), each ``{"time": {"w": (2H, 4H), "b": (4H,)},
"depth": {"w": (2H, 4H or H), "b": (4H or H,)}}``. A recurrent-dropout mask is
``(*B, L*H)``: layer ``l``'s block multiplies ``h^l_{t-1}`` where it enters ``Hc``.

**The 1-D Grid LSTM** (`grid_lstm_1d`, the paper's parity network) is the
depth-only grid on a single input: ``h^0 = x W_in``, ``m^0 = 0``, then ``L`` 1-D
blocks ``(h, m) = block([h], [m], W^l)``; the output is the top ``h``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from rnnjax.cells.base import (
    CellBase,
    Initializers,
    check_key,
    check_positive_int,
    expand,
    linear,
    mask_operand,
    split_gates,
)
from rnnjax.cells.lstm import LSTMState

GATES = ("i", "f", "g", "o")
PRIORITIES = (None, "depth")


def grid_block(
    params: Sequence[dict],
    hs: Sequence[jax.Array],
    ms: Sequence[jax.Array],
    *,
    non_lstm: Sequence[int] = (),
    priority: int | None = None,
    dtype=None,
):
    """One N-dimensional Grid LSTM block (see the module docstring).

    Args:
      params: ``N`` dicts ``{"w": (N*H, 4H), "b": (4H,)}`` (``(N*H, H)``, ``(H,)``
        for a dimension in ``non_lstm``).
      hs: ``N`` hidden and ``N`` memory vectors, each ``(*B, H)``.
      ms: as ``hs``.
      non_lstm: the dimensions that are a plain ``tanh`` transfer (memory passed
        through).
      priority: a dimension computed first; its new hidden vector replaces the old
        one in the concatenation the other dimensions read.
      dtype: compute dtype of the matrix products.

    Returns:
      ``(hs', ms')``, tuples of ``N`` arrays ``(*B, H)``.
    """
    n = len(params)
    if len(hs) != n or len(ms) != n:
        raise ValueError(
            f"hs, ms: expected {n} vectors each (one per dimension), got "
            f"{len(hs)} and {len(ms)}"
        )
    hs, ms = list(hs), list(ms)
    new_h, new_m = list(hs), list(ms)

    def update(i, concat):
        p = params[i]
        a = linear(concat, p["w"], dtype) + expand(p["b"], concat.ndim)
        if i in non_lstm:
            return jnp.tanh(a), ms[i]
        g = split_gates(a, GATES)
        m = jax.nn.sigmoid(g["f"]) * ms[i] + jax.nn.sigmoid(g["i"]) * jnp.tanh(g["g"])
        return jax.nn.sigmoid(g["o"]) * jnp.tanh(m), m

    concat = jnp.concatenate(hs, axis=-1)
    if priority is not None:
        new_h[priority], new_m[priority] = update(priority, concat)
        hs[priority] = new_h[priority]
        concat = jnp.concatenate(hs, axis=-1)
    for i in range(n):
        if i != priority:
            new_h[i], new_m[i] = update(i, concat)
    return tuple(new_h), tuple(new_m)


def _block_params(inits, key, n, hidden, forget_bias, non_lstm=()):
    """``n`` dimension dicts for one block (LSTM gates ``i, f, g, o``)."""
    dims = []
    for i, k in enumerate(jax.random.split(key, n)):
        kw, kb = jax.random.split(k)
        gates = 1 if i in non_lstm else len(GATES)
        w = inits.recurrent_or_default(gates)(kw, (n * hidden, gates * hidden))
        b = inits.bias_or_default()(kb, (gates * hidden,), jnp.float32)
        if gates > 1:
            shift = jnp.zeros((gates, hidden)).at[GATES.index("f")].set(forget_bias)
            b = b + shift.reshape(-1)
        dims.append({"w": w.astype(jnp.float32), "b": b})
    return tuple(dims)


def _check_x(w_in, x):
    if x.shape[-1:] != w_in.shape[:1]:
        raise ValueError(
            f"x: expected {w_in.shape[0]} input features (the size the params were "
            f"initialised for) on the last axis, got shape {tuple(x.shape)}"
        )


@dataclasses.dataclass(frozen=True)
class GridLSTM(CellBase):
    """A 2-D (time x depth) Grid LSTM as one cell; build it with
    `rnnjax.grid_lstm`.

    Besides [`CellBase`][rnnjax.CellBase]'s ``hidden_size`` (``H``, the size of every
    hidden and memory vector), ``dtype`` and ``inits`` (defaults Glorot uniform for
    ``w_in``, orthogonal per gate for the block ``w``, zeros for ``b`` plus
    ``forget_bias``):

    Attributes:
      depth: ``L``, the number of blocks along depth per time step.
      tied: share one block's weights across the ``L`` layers (the paper's deep
        networks); ``False`` gives each layer its own.
      non_lstm_depth: the depth dimension is ``h' = tanh(W [h_time, h_depth] + b)``,
        with no memory.
      priority: ``"depth"`` computes the depth dimension first in every block and
        feeds its new hidden vector to the time dimension; ``None`` computes both
        from the block's inputs.
      forget_bias: added to every LSTM forget-gate bias at initialisation.
    """

    depth: int = 2
    tied: bool = True
    non_lstm_depth: bool = False
    priority: str | None = None
    forget_bias: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        check_positive_int(self.depth, "depth")
        if self.priority not in PRIORITIES:
            raise ValueError(
                f"priority: expected one of {PRIORITIES}, got {self.priority!r}"
            )

    def _init(self, key, input_size):
        k_in, k_layers = jax.random.split(key)
        num = 1 if self.tied else self.depth
        non_lstm = (1,) if self.non_lstm_depth else ()
        layers = []
        for l in range(num):
            t, d = _block_params(
                self.inits,
                jax.random.fold_in(k_layers, l),
                2,
                self.hidden_size,
                self.forget_bias,
                non_lstm,
            )
            layers.append({"time": t, "depth": d})
        w_in = self.inits.kernel_or_default()(
            k_in, (input_size, self.hidden_size), jnp.float32
        )
        return {"w_in": w_in, "layers": tuple(layers)}

    def _in(self, params) -> int:
        return params["w_in"].shape[0]

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        """Zero carries, one `LSTMState` ``(c=m, h)`` per layer."""
        zeros = self._zeros(batch_shape, self.hidden_size, dtype)
        return tuple(LSTMState(zeros, zeros) for _ in range(self.depth))

    def rec_width(self, params) -> int:
        return self.depth * self.hidden_size

    def project_split(self, params, x):
        """``(x W_in, None)``: the bottom depth hidden vector, ``(..., I) -> (..., H)``.

        No bias: ``unroll`` then adds none."""
        _check_x(params["w_in"], x)
        return linear(x, params["w_in"], self.dtype), None

    def project(self, params, x):
        return self.project_split(params, x)[0]

    def recur(self, params, carry, z, rec_mask=None):
        """One time step: the depth dimension runs bottom to top from ``z (*B, H)``."""
        H = self.hidden_size
        if not isinstance(carry, (tuple, list)) or len(carry) != self.depth:
            raise ValueError(
                f"carry: expected a tuple of {self.depth} LSTMState (one per layer), "
                f"got {type(carry).__name__}"
            )
        h_d, m_d = z, jnp.zeros_like(z)
        states = []
        for l, state in enumerate(carry):
            p = params["layers"][0 if self.tied else l]
            mask = None if rec_mask is None else rec_mask[..., l * H : (l + 1) * H]
            h_t = mask_operand(state.h, mask)
            (h_t, h_d), (m_t, m_d) = grid_block(
                (p["time"], p["depth"]),
                (h_t, h_d),
                (state.c, m_d),
                non_lstm=(1,) if self.non_lstm_depth else (),
                priority=1 if self.priority == "depth" else None,
                dtype=self.dtype,
            )
            states.append(LSTMState(m_t, h_t))
        return tuple(states), h_d


def grid_lstm(
    hidden_size: int,
    depth: int,
    *,
    tied: bool = True,
    non_lstm_depth: bool = False,
    priority: str | None = None,
    forget_bias: float = 1.0,
    dtype: Any = None,
    kernel_init=None,
    recurrent_init=None,
    bias_init=None,
) -> GridLSTM:
    """A 2-D (time x depth) Grid LSTM, as one cell (see the module docstring).
    Every option is an attribute of `GridLSTM`, documented there.
    ``kernel_init``, ``recurrent_init`` and ``bias_init`` (each ``f(key, shape,
    dtype)``) make its ``inits``.
    """
    return GridLSTM(
        hidden_size,
        dtype=dtype,
        inits=Initializers(kernel_init, recurrent_init, bias_init),
        depth=depth,
        tied=bool(tied),
        non_lstm_depth=bool(non_lstm_depth),
        priority=priority,
        forget_bias=forget_bias,
    )


@dataclasses.dataclass(frozen=True)
class GridLSTM1D:
    """The 1-D Grid LSTM (depth only); build it with `rnnjax.grid_lstm_1d`.

    Not a recurrent cell (no time axis): ``init`` and ``apply``.

    Attributes:
      hidden_size: ``H``, the size of every hidden and memory vector.
      depth: ``L``, the number of 1-D blocks.
      tied: share one block's weights across the ``L`` blocks (the paper's
        default); ``False`` gives each its own.
      forget_bias: added to every forget-gate bias at initialisation.
      dtype: compute dtype of the matrix products.
      inits: the initialisers (defaults as `GridLSTM`'s).
    """

    hidden_size: int
    depth: int
    tied: bool = True
    forget_bias: float = 1.0
    dtype: Any = None
    inits: Initializers = dataclasses.field(default_factory=Initializers)

    def __post_init__(self):
        check_positive_int(self.hidden_size, "hidden_size")
        check_positive_int(self.depth, "depth")

    def init(self, key, input_size: int):
        """``{"w_in": (I, H), "layers": tuple of 1 (tied) or L [{"w": (H, 4H),
        "b": (4H,)}]}``."""
        check_key(key, "key")
        check_positive_int(input_size, "input_size")
        k_in, k_layers = jax.random.split(key)
        num = 1 if self.tied else self.depth
        layers = tuple(
            _block_params(
                self.inits,
                jax.random.fold_in(k_layers, l),
                1,
                self.hidden_size,
                self.forget_bias,
            )
            for l in range(num)
        )
        w_in = self.inits.kernel_or_default()(
            k_in, (input_size, self.hidden_size), jnp.float32
        )
        return {"w_in": w_in, "layers": layers}

    def apply(self, params, x):
        """``x (*B, I) -> h (*B, H)``, the top block's hidden vector."""
        _check_x(params["w_in"], x)
        h = linear(x, params["w_in"], self.dtype)
        m = jnp.zeros_like(h)
        for l in range(self.depth):
            p = params["layers"][0 if self.tied else l]
            (h,), (m,) = grid_block(p, (h,), (m,), dtype=self.dtype)
        return h


def grid_lstm_1d(
    hidden_size: int,
    depth: int,
    *,
    tied: bool = True,
    forget_bias: float = 1.0,
    dtype: Any = None,
    kernel_init=None,
    recurrent_init=None,
    bias_init=None,
) -> GridLSTM1D:
    """A 1-D Grid LSTM: ``L = depth`` 1-D blocks applied to one input (no time axis).

    The paper's k-bit parity network: the bits are ``x``, ``h^0 = x W_in``,
    ``m^0 = 0``, and ``apply(params, x)`` returns the top hidden vector (put a
    classifier on it). Every option is an attribute of `GridLSTM1D`,
    documented there; ``kernel_init``, ``recurrent_init`` and ``bias_init`` (each
    ``f(key, shape, dtype)``) make its ``inits``.
    """
    return GridLSTM1D(
        hidden_size,
        depth,
        tied=bool(tied),
        forget_bias=forget_bias,
        dtype=dtype,
        inits=Initializers(kernel_init, recurrent_init, bias_init),
    )

"""Flax linen modules over rnnjax cells and stacks.

`Cell` makes any rnnjax cell a drop-in cell for Flax's own ``nn.RNN`` and
``nn.Bidirectional`` (the ``nn.RNNCellBase`` interface):

    import flax.linen as nn
    import rnnjax
    from rnnjax.flax import linen as rnn

    layer = nn.RNN(rnn.Cell(rnnjax.lstm(64, peephole=True)))
    layer = nn.RNN(rnn.LSTMCell(64, options={"peephole": True}))  # Flax's inits

`RNN` is a whole `rnnjax.stack` (layers, both directions, dropout) run
by rnnjax's fused unroll, with ``seq_lengths`` and ``resets``:

    layer = rnn.RNN(rnnjax.gru(128), num_layers=2, bidirectional=True, dropout=0.1)
    variables = layer.init(jax.random.key(0), xs)                  # xs (B, T, I)
    ys = layer.apply(variables, xs, deterministic=False,
                     rngs={"dropout": jax.random.key(1)})          # (B, T, 256)

Parameters: a `Cell` holds ``params["cell"]``, exactly ``cell.init(key, I)``; an
`RNN` ``params["stack"]``, exactly ``Stack.init`` (``[layer][direction]``), so
parameters made by rnnjax load into the modules unchanged. `XLSTM` runs an
xLSTM stack of ``rnnjax.models`` (``params["model"]``).

Carries are Flax's: an LSTM's is the tuple ``(c, h)``, from ``initialize_carry``,
to and from ``__call__`` (an `rnnjax.LSTMState` is accepted too) and in `RNN`'s
``carry[layer][direction]``.

The shorthands ``LSTMCell``, ``OptimizedLSTMCell``, ``GRUCell``, ``SimpleCell``,
``MGUCell`` and ``ConvLSTMCell`` are `FlaxCell` subclasses with the constructor
arguments of Flax's classes of the same names, in the same order, with Flax's
defaults and meanings (``dtype`` the computation and output dtype,
``param_dtype`` the parameters'), plus ``options``: keyword arguments of the
rnnjax factory, which override what the Flax arguments set, e.g.
``LSTMCell(64, options={"peephole": True})``. Their submodule names are
Flax's (``LSTMCell_0``, ...). ``MUT1Cell``-``MUT3Cell`` (no Flax twin) are
`FactoryCell` subclasses: ``features`` and ``options``. What still differs from
Flax is listed on the Flax page of the documentation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.core import FrozenDict

from rnnjax import _validate
from rnnjax.cells import base
from rnnjax.cells.mut import mut1, mut2, mut3
from rnnjax.flax import _common as common
from rnnjax.flax._common import build_stack
from rnnjax.flax.linen_xlstm import XLSTM
from rnnjax.layers import Stack
from rnnjax.unroll import UnrollOptions

__all__ = [
    "RNN",
    "Cell",
    "ConvLSTMCell",
    "FactoryCell",
    "FlaxCell",
    "GRUCell",
    "LSTMCell",
    "MGUCell",
    "MUT1Cell",
    "MUT2Cell",
    "MUT3Cell",
    "OptimizedLSTMCell",
    "SimpleCell",
    "XLSTM",
]


class Cell(nn.RNNCellBase):
    """One step of an rnnjax cell, as a linen ``RNNCellBase``.

    ``__call__(carry, x) -> (carry, y)`` is ``cell.step`` on ``x (*B, I)``;
    ``initialize_carry(rng, input_shape)`` is ``cell.initial_carry(input_shape[:-1])``
    (zeros; ``rng`` is unused). Carries are in Flax's form: an `rnnjax.LSTMState`
    is the tuple ``(c, h)``. Use it inside ``nn.RNN`` / ``nn.Bidirectional``, or
    call it step by step.

    Attributes:
      cell: an rnnjax cell, e.g. ``rnnjax.lstm(64)``.

    Parameters: ``params["cell"]``, the pytree ``cell.init(key, I)`` returns.
    """

    cell: Any

    def __post_init__(self):
        _validate.check_cell(self.cell)
        super().__post_init__()

    @nn.compact
    def __call__(self, carry, inputs):
        params = self.param("cell", self.cell.init, inputs.shape[-1])  # shapes checked
        return common.flax_step(self.cell, params, carry, inputs)

    @nn.nowrap
    def initialize_carry(self, rng, input_shape: tuple[int, ...]):
        """The zero carry for inputs ``(*B, I)``, Flax's form (``rng`` unused)."""
        del rng
        return common.to_flax_carry(self.cell.initial_carry(tuple(input_shape[:-1])))

    @property
    def num_feature_axes(self) -> int:
        """Axes of one step's input: 1 (features), or the cell's ``event_ndim``
        (e.g. spatial axes and channels for a convolutional cell)."""
        return base.event_ndim(self.cell)


class RNN(nn.Module):
    """A stack of recurrent layers (`rnnjax.stack`) run by rnnjax's unroll.

    Attributes:
      cells: one rnnjax cell (repeated ``num_layers`` times), a sequence of cells,
        one per layer, or a composed [`rnnjax.Stack`][rnnjax.Stack] (e.g. of
        `rnnjax.Bidirectional` layers with another merge; the other stack
        arguments then keep their defaults).
      num_layers: as [`rnnjax.stack`][rnnjax.stack].
      bidirectional: as ``num_layers``.
      dropout: as ``num_layers``.
      input_dropout: as ``num_layers``.
      recurrent_dropout: as ``num_layers``.
      time_major: as ``num_layers``.
      options: how the recurrence runs (implementation, steps per loop iteration,
        memory for reverse mode): an [`rnnjax.UnrollOptions`][rnnjax.UnrollOptions].
      deterministic: default of the call's ``deterministic`` (dropout off when
        true). Needed, here or at the call, only when a dropout rate is set.
      return_carry: default of the call's ``return_carry``.
      rng_collection: the Flax RNG stream dropout draws from (``"dropout"``).

    Parameters: ``params["stack"]``, exactly the pytree of ``self.stack.init``
    (``[layer][direction]`` of cell parameters).
    """

    cells: Any
    num_layers: int | None = None
    bidirectional: bool = False
    dropout: float = 0.0
    input_dropout: float = 0.0
    recurrent_dropout: float = 0.0
    time_major: bool = False
    options: UnrollOptions = UnrollOptions()
    deterministic: bool | None = None
    return_carry: bool = False
    rng_collection: str = "dropout"

    @property
    def stack(self) -> Stack:
        """The [`rnnjax.Stack`][rnnjax.Stack] this module runs."""
        return build_stack(
            self.cells,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            dropout=self.dropout,
            input_dropout=self.input_dropout,
            recurrent_dropout=self.recurrent_dropout,
            time_major=self.time_major,
        )

    @nn.compact
    def __call__(
        self,
        xs,
        *,
        carry=None,
        seq_lengths=None,
        resets=None,
        deterministic: bool | None = None,
        return_carry: bool | None = None,
    ):
        """Runs the stack over ``xs (*B, T, I)`` (``(T, *B, I)`` when time-major).

        Args:
          xs: the inputs.
          carry: initial carries ``carry[layer][direction]``, an LSTM's as ``(c,
            h)`` (zeros when ``None``; see `initial_carry`).
          seq_lengths, resets: as [`rnnjax.unroll`][rnnjax.unroll], for every layer.
          deterministic: dropout off when true; overrides the attribute.
          return_carry: also return the final carries; overrides the attribute.

        Returns:
          ``ys (*B, T, D*Y)``, or ``(carry, ys)`` with ``return_carry``.
        """
        model = self.stack
        params = self.param("stack", model.init, xs.shape[-1])
        _, _, carry_batch = _validate.check_xs(
            xs, model.time_major, model.layers[0].event_ndim
        )
        carry = common.stack_from_flax(model, carry, carry_batch)
        training = False
        if model.has_dropout:
            training = not nn.merge_param(
                "deterministic", self.deterministic, deterministic
            )
        key = self.make_rng(self.rng_collection) if training else None
        carry, ys = model.apply(
            params,
            xs,
            carry=carry,
            seq_lengths=seq_lengths,
            resets=resets,
            key=key,
            training=training,
            options=self.options,
        )
        return_carry = self.return_carry if return_carry is None else return_carry
        return (common.stack_to_flax(carry), ys) if return_carry else ys

    @nn.nowrap
    def initial_carry(self, batch_shape: tuple[int, ...] = (), dtype=jnp.float32):
        """Zero carries ``carry[layer][direction]`` for batch shape ``B`` (an
        LSTM's as ``(c, h)``)."""
        return common.stack_to_flax(self.stack.initial_carry(batch_shape, dtype))


# --------------------------------------------------------------------- shorthands


class FactoryCell(Cell):
    """A `Cell` whose rnnjax cell is built from ``features`` and
    ``options`` by `make_cell` (its ``factory`` by default); the base of
    ``MUT1Cell``-``MUT3Cell``. A subclass sets ``factory`` or overrides `make_cell`
    (and may add fields).

    Attributes:
      features: ``H``, the hidden size.
      options: keyword arguments of the rnnjax factory (a mapping, kept as a
        ``FrozenDict``), e.g. ``{"peephole": True}`` for `rnnjax.lstm`.
      cell: the rnnjax cell, built at construction (not a constructor argument).
    """

    cell: Any = dataclasses.field(init=False)
    features: int
    options: Mapping[str, Any] = FrozenDict()

    def __post_init__(self):
        self.options = FrozenDict(self.options)
        self.cell = self.make_cell()
        super().__post_init__()

    #: The rnnjax factory a shorthand calls (``rnnjax.lstm``, ...).
    factory: ClassVar[Callable | None] = None

    @nn.nowrap
    def make_cell(self):
        """``factory(features, **options)``; override it for another build."""
        if self.factory is None:
            raise TypeError(
                f"{type(self).__name__}: a FactoryCell subclass sets `factory` or "
                f"overrides `make_cell`"
            )
        return self.factory(self.features, **self.options)


class MUT1Cell(FactoryCell):
    """[`Cell`][rnnjax.flax.linen.Cell] of ``rnnjax.mut1(features, **options)``."""

    factory = staticmethod(mut1)


class MUT2Cell(FactoryCell):
    """[`Cell`][rnnjax.flax.linen.Cell] of ``rnnjax.mut2(features, **options)``."""

    factory = staticmethod(mut2)


class MUT3Cell(FactoryCell):
    """[`Cell`][rnnjax.flax.linen.Cell] of ``rnnjax.mut3(features, **options)``."""

    factory = staticmethod(mut3)


class FlaxCell(Cell):
    """A `Cell` with Flax's contract for the arguments of Flax's own cells: the
    base of `LSTMCell`, `GRUCell`, `SimpleCell`, `MGUCell` and `ConvLSTMCell`.

    A subclass declares Flax's fields (``features``, Flax's arguments in Flax's
    order, ``options``) and sets ``factory(features, args, options)``, which
    builds the rnnjax cell from ``args``, the fields named in ``flax_args``.
    Parameters are ``cell.init``'s cast to ``param_dtype``; a step computes in
    `compute_dtype`, each carry leaf out in the promotion of that dtype and the
    leaf's (Flax's arithmetic); ``initialize_carry`` draws each leaf with
    ``carry_init(key, shape, param_dtype)``.
    """

    cell: Any = dataclasses.field(init=False)

    #: ``factory(features, args, options) -> rnnjax cell``.
    factory: ClassVar[Callable | None] = None
    #: The fields passed to ``factory`` in ``args``.
    flax_args: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self):
        self.options = FrozenDict(self.options)
        self.cell = self.make_cell()
        super().__post_init__()

    @nn.nowrap
    def make_cell(self):
        """``factory(features, args, options)``; override it for another build."""
        if self.factory is None:
            raise TypeError(
                f"{type(self).__name__}: a FlaxCell subclass sets `factory` or "
                f"overrides `make_cell`"
            )
        args = {name: getattr(self, name) for name in self.flax_args}
        return self.factory(self.features, args, dict(self.options))

    @nn.nowrap
    def compute_dtype(self, inputs_dtype):
        """``dtype``, else the promotion of the inputs' and ``param_dtype``."""
        return common.compute_dtype(self.dtype, inputs_dtype, self.param_dtype)

    @nn.compact
    def __call__(self, carry, inputs):
        params = self.param("cell", self._init_params, inputs.shape[-1])
        dtype = self.compute_dtype(inputs.dtype)
        return common.flax_step(self.cell, params, carry, inputs, dtype)

    @nn.nowrap
    def _init_params(self, key, input_size):
        return common.cast_params(self.cell.init(key, input_size), self.param_dtype)

    @nn.nowrap
    def initialize_carry(self, rng, input_shape: tuple[int, ...]):
        """The carry for inputs ``(*B, I)``: ``carry_init(key, shape,
        param_dtype)`` for each leaf (an LSTM's ``(c, h)`` from ``split(rng)``)."""

        def keys(n):
            return [rng] * n if rng is None or n == 1 else jax.random.split(rng, n)

        return common.initial_flax_carry(
            self.cell, input_shape, self.carry_init, keys, self.param_dtype
        )


_LSTM_ARGS = (
    "gate_fn",
    "activation_fn",
    "kernel_init",
    "recurrent_kernel_init",
    "bias_init",
    "dtype",
    "param_dtype",
)


class _GatedFields(FlaxCell):
    """The fields of Flax's ``LSTMCell`` and ``GRUCell``."""

    features: int
    gate_fn: Callable[..., Any] = jax.nn.sigmoid
    activation_fn: Callable[..., Any] = jnp.tanh
    kernel_init: Callable = common.lecun_normal
    recurrent_kernel_init: Callable = common.orthogonal
    bias_init: Callable = common.zeros
    dtype: Any = None
    param_dtype: Any = jnp.float32
    carry_init: Callable = common.zeros
    options: Mapping[str, Any] = FrozenDict()

    flax_args = _LSTM_ARGS


class LSTMCell(_GatedFields):
    """Flax's ``nn.LSTMCell``: ``rnnjax.lstm`` (fused kernels) with Flax's
    arguments and defaults.

    Attributes:
      features: ``H``.
      gate_fn: the gates' activation (sigmoid).
      activation_fn: of the candidate and the output (tanh).
      kernel_init, recurrent_kernel_init, bias_init: of each gate's input kernel
        ``(I, H)`` (LeCun normal), recurrent kernel ``(H, H)`` (orthogonal) and
        bias ``(H,)`` (zeros: no forget bias, as Flax).
      dtype: the computation and output dtype (default: inputs' and params').
      param_dtype: the parameters' dtype (float32).
      carry_init: of each carry leaf (zeros).
      options: keyword arguments of `rnnjax.lstm`, over the above (e.g.
        ``{"peephole": True}``, ``{"forget_bias": 1.0}``).

    Parameters: ``params["cell"]``, `rnnjax.lstm`'s ``w_x (I, 4H)``, ``w_h (H,
    4H)``, ``b (4H,)``, gates ``i, f, g, o``.
    """

    factory = staticmethod(common.flax_lstm)


class OptimizedLSTMCell(LSTMCell):
    """Flax's ``nn.OptimizedLSTMCell``: `LSTMCell` (the fused kernels are the
    optimisation)."""


class GRUCell(_GatedFields):
    """Flax's ``nn.GRUCell``: ``rnnjax.gru`` (reset after the product, with its
    bias ``b_hn``) with Flax's arguments and defaults; the attributes as
    `LSTMCell`'s (``gate_fn`` of ``r, z``, ``activation_fn`` of ``n``;
    ``options`` of `rnnjax.gru`).

    Parameters: ``params["cell"]``, ``w_x (I, 3H)``, ``w_h (H, 3H)``, ``b (3H,)``,
    ``b_hn (H,)``, gates ``r, z, n``.
    """

    factory = staticmethod(common.flax_gru)


class SimpleCell(FlaxCell):
    """Flax's ``nn.SimpleCell``: ``rnnjax.simple_rnn`` with Flax's arguments and
    defaults (``residual`` adds ``h`` to the pre-activation; ``options`` of
    `rnnjax.simple_rnn`). Parameters: ``w_x (I, H)``, ``w_h (H, H)``, ``b (H,)``."""

    features: int
    activation_fn: Callable[..., Any] = jnp.tanh
    kernel_init: Callable = common.lecun_normal
    recurrent_kernel_init: Callable = common.orthogonal
    bias_init: Callable = common.zeros
    dtype: Any = None
    param_dtype: Any = jnp.float32
    carry_init: Callable = common.zeros
    residual: bool = False
    options: Mapping[str, Any] = FrozenDict()

    factory = staticmethod(common.flax_simple)
    flax_args = (*_LSTM_ARGS[1:], "residual")


class MGUCell(FlaxCell):
    """Flax's ``nn.MGUCell``: ``rnnjax.mgu(reset_after=True, gate_keeps=True)``
    (Flax's form: ``n = act(a_n + f * (h W_hn + b_hn))``, ``h' = (1 - f) n + f h``)
    with Flax's arguments and defaults: the forget gate's bias from
    ``forget_bias_init`` (ones), the candidate's and ``b_hn`` from
    ``activation_bias_init`` (zeros); ``reset_gate=False`` drops the reset (and
    ``b_hn``). Parameters: ``w_x (I, 2H)``, ``w_h (H, 2H)``, ``b (2H,)`` (gates
    ``f, n``), ``b_hn (H,)``.
    """

    features: int
    gate_fn: Callable[..., Any] = jax.nn.sigmoid
    activation_fn: Callable[..., Any] = jnp.tanh
    kernel_init: Callable = common.lecun_normal
    recurrent_kernel_init: Callable = common.orthogonal
    forget_bias_init: Callable = common.ones
    activation_bias_init: Callable = common.zeros
    dtype: Any = None
    param_dtype: Any = jnp.float32
    carry_init: Callable = common.zeros
    reset_gate: bool = True
    options: Mapping[str, Any] = FrozenDict()

    factory = staticmethod(common.flax_mgu)
    flax_args = (
        "gate_fn",
        "activation_fn",
        "kernel_init",
        "recurrent_kernel_init",
        "forget_bias_init",
        "activation_bias_init",
        "dtype",
        "param_dtype",
        "reset_gate",
    )


class ConvLSTMCell(FlaxCell):
    """Flax's ``nn.ConvLSTMCell``: ``rnnjax.conv_lstm(features, kernel_size,
    peephole=False)`` on ``x (*B, *S, C)`` with Flax's arguments (``strides``
    None or 1 and ``padding="SAME"`` only, ``use_bias=True`` only: the state keeps
    its spatial shape). Parameters: ``w_x (*W, C, 4H)``, ``w_h (*W, H, 4H)``,
    ``b (4H,)`` (gates ``i, f, g, o``; the forget block starts at 1, where Flax
    adds 1 in the step).
    """

    features: int
    kernel_size: Sequence[int]
    strides: Sequence[int] | None = None
    padding: Any = "SAME"
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32
    carry_init: Callable = common.zeros
    options: Mapping[str, Any] = FrozenDict()

    factory = staticmethod(common.flax_conv_lstm)
    flax_args = (
        "kernel_size",
        "strides",
        "padding",
        "use_bias",
        "dtype",
        "param_dtype",
    )

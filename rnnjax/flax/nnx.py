"""Flax NNX modules over rnnjax cells and stacks.

`Cell` makes any rnnjax cell a drop-in cell for Flax's own ``nnx.RNN`` (the
``nnx.RNNCellBase`` interface):

    from flax import nnx
    import rnnjax
    from rnnjax.flax import nnx as rnn

    rngs = nnx.Rngs(0)
    layer = nnx.RNN(rnn.Cell(rnnjax.lstm(64), in_features=32, rngs=rngs))
    layer = nnx.RNN(rnn.LSTMCell(32, 64, rngs=rngs))       # the same

`RNN` is a whole `rnnjax.stack` (layers, both directions, dropout) run
by rnnjax's fused unroll, with ``seq_lengths`` and ``resets``:

    layer = rnn.RNN(rnnjax.gru(128), 32, num_layers=2, bidirectional=True,
                    dropout=0.1, rngs=nnx.Rngs(params=0, dropout=1))
    ys = layer(xs)                  # (B, T, 256); dropout on (NNX's training default)
    layer.eval(); ys = layer(xs)    # dropout off; layer.train() turns it back on

Parameters: ``Cell.params`` and ``RNN.params`` are exactly the pytree
``cell.init`` (resp. ``Stack.init``, ``[layer][direction]``) returns, with each
array held in its own ``nnx.Param`` (state paths such as ``params/0/1/w_x``).
``module.get_params()`` returns the plain pytree and ``module.set_params(p)`` loads
one, so ``cell.step(module.get_params(), carry, x)`` and
``module.stack.apply(module.get_params(), xs)`` give the module's results, and
parameters made by rnnjax load unchanged.

One ``nnx.Param`` per array, not one ``nnx.Param`` around the whole pytree: NNX
treats a Variable's value as a leaf, and ``nnx.Optimizer.update`` writes a
pytree-valued Param back as an ``nnx.State`` (the pytree's dicts and tuples become
State nodes), which changes the model's structure after one step and breaks
``jax.lax.scan`` / ``nnx.jit`` training loops (flax 0.12).

Carries are Flax's: an LSTM's is the tuple ``(c, h)``, from ``initialize_carry``,
to and from ``__call__`` (an `rnnjax.LSTMState` is accepted too) and in `RNN`'s
``carry[layer][direction]``.

``LSTMCell``, ``OptimizedLSTMCell``, ``GRUCell`` and ``SimpleCell`` take the
arguments of Flax's ``nnx`` classes of the same names (``in_features,
hidden_features, *, gate_fn, ..., rngs``) with their defaults and meanings;
``MGUCell`` and ``ConvLSTMCell`` those of Flax's linen classes, after
``in_features``; every other keyword argument goes to the rnnjax factory, e.g.
``LSTMCell(32, 64, peephole=True, rngs=rngs)``. ``MUT1Cell``-``MUT3Cell`` hold
``rnnjax.mut1(hidden_features, **options)``, .... What still differs from Flax is
listed on the Flax page of the documentation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from rnnjax import _validate
from rnnjax.cells import base
from rnnjax.cells.mut import mut1, mut2, mut3
from rnnjax.flax import _common as common
from rnnjax.flax._common import build_stack
from rnnjax.flax.nnx_params import assign_params, unwrap_params, wrap_params
from rnnjax.flax.nnx_xlstm import XLSTM
from rnnjax.unroll import UnrollOptions

__all__ = [
    "RNN",
    "Cell",
    "ConvLSTMCell",
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


class Cell(nnx.RNNCellBase):
    """One step of an rnnjax cell, as an ``nnx.RNNCellBase``.

    ``__call__(carry, x) -> (carry, y)`` is ``cell.step`` on ``x (*B, I)``;
    ``initialize_carry(input_shape, rngs=None, carry_init=None)`` is
    ``cell.initial_carry(input_shape[:-1])`` (zeros), or ``carry_init(key, shape,
    dtype)`` on each of its leaves when given (keys from ``rngs.carry``); in
    Flax's form (an `rnnjax.LSTMState` as ``(c, h)``).

    Args:
      cell: an rnnjax cell, e.g. ``rnnjax.lstm(64)``.
      in_features: ``I``.
      rngs: ``rngs.params()`` draws the initial parameters.

    Attributes:
      cell: the rnnjax cell (static).
      params: the pytree ``cell.init(key, I)`` returns, each array an ``nnx.Param``.
    """

    def __init__(self, cell, in_features: int, *, rngs: nnx.Rngs):
        _validate.check_cell(cell)
        self.cell = cell
        self.in_features = in_features
        self.params = wrap_params(cell.init(rngs.params(), in_features))

    def __call__(self, carry, inputs):
        params = self.get_params()
        base.check_params(self.cell, params, inputs.shape[-1])
        dtype = self.compute_dtype(inputs.dtype)
        return common.flax_step(self.cell, params, carry, inputs, dtype)

    def compute_dtype(self, inputs_dtype):
        """The computation dtype (``None``: rnnjax's, the cell's ``dtype``)."""
        del inputs_dtype

    def get_params(self):
        """The parameters as the plain pytree of ``cell.init``."""
        return unwrap_params(self.params)

    def set_params(self, params) -> None:
        """Loads ``params``, a pytree of ``cell.init``'s structure."""
        assign_params(self.params, params)

    def initialize_carry(
        self,
        input_shape: tuple[int, ...],
        rngs: nnx.Rngs | nnx.RngStream | None = None,
        carry_init=None,
    ):
        """The carry for inputs of shape ``(*B, I)``: zeros, or ``carry_init``."""
        carry_init = carry_init or getattr(self, "carry_init", None)
        stream = rngs.carry if isinstance(rngs, nnx.Rngs) else rngs
        if stream is None:
            stream = getattr(self, "rngs", None)

        def keys(n):
            if stream is None:
                raise ValueError(
                    "rngs: carry_init needs an Rngs or RngStream, got None"
                )
            return [stream() for _ in range(n)]

        dtype = getattr(self, "param_dtype", jnp.float32)
        return common.initial_flax_carry(
            self.cell, input_shape, carry_init, keys, dtype
        )

    @property
    def num_feature_axes(self) -> int:
        """Axes of one step's input: 1 (features), or the cell's ``event_ndim``
        (e.g. spatial axes and channels for a convolutional cell)."""
        return base.event_ndim(self.cell)


class RNN(nnx.Module):
    """A stack of recurrent layers (`rnnjax.stack`) run by rnnjax's unroll.

    Args:
      cells: one rnnjax cell (repeated ``num_layers`` times), a sequence of cells,
        one per layer, or a composed [`rnnjax.Stack`][rnnjax.Stack] (e.g. of
        `rnnjax.Bidirectional` layers with another merge; the other stack
        arguments then keep their defaults).
      in_features: ``I``.
      num_layers:
        as [`rnnjax.stack`][rnnjax.stack].
      bidirectional: as ``num_layers``.
      dropout: as ``num_layers``.
      input_dropout: as ``num_layers``.
      recurrent_dropout: as ``num_layers``.
      time_major: as ``num_layers``.
      options: how the recurrence runs (implementation, steps per loop iteration,
        memory for reverse mode): an [`rnnjax.UnrollOptions`][rnnjax.UnrollOptions].
      deterministic: dropout off when true. ``False`` by default (NNX modules
        start in training mode, as ``nnx.Dropout``); ``.eval()`` sets it to
        ``True``, ``.train()`` back to ``False``, and ``nnx.view(model,
        deterministic=...)`` works too.
      return_carry: default of the call's ``return_carry``.
      rng_collection: the ``nnx.Rngs`` stream dropout draws from (``"dropout"``,
        falling back to ``default``).
      rngs: ``rngs.params()`` draws the parameters; the dropout stream is forked
        and kept (only when a dropout rate is set).

    Attributes:
      stack: the [`rnnjax.Stack`][rnnjax.Stack] (static).
      options: the [`rnnjax.UnrollOptions`][rnnjax.UnrollOptions] (static).
      params: the pytree of ``stack.init``, each array an ``nnx.Param``.
    """

    def __init__(
        self,
        cells,
        in_features: int,
        *,
        num_layers: int | None = None,
        bidirectional: bool = False,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        time_major: bool = False,
        options: UnrollOptions | None = None,
        deterministic: bool | None = False,
        return_carry: bool = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs,
    ):
        self.stack = build_stack(
            cells,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            input_dropout=input_dropout,
            recurrent_dropout=recurrent_dropout,
            time_major=time_major,
        )
        self.in_features = in_features
        self.options = UnrollOptions() if options is None else options
        self.deterministic = deterministic
        self.return_carry = return_carry
        self.rng_collection = rng_collection
        self.params = wrap_params(self.stack.init(rngs.params(), in_features))
        if self.stack.has_dropout:
            self.rngs = rngs[rng_collection].fork()
        else:
            self.rngs = nnx.data(None)

    def __call__(
        self,
        xs,
        *,
        carry=None,
        seq_lengths=None,
        resets=None,
        deterministic: bool | None = None,
        return_carry: bool | None = None,
        rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None,
    ):
        """Runs the stack over ``xs (*B, T, I)`` (``(T, *B, I)`` when time-major).

        Args:
          xs: the inputs.
          carry: initial carries ``carry[layer][direction]``, an LSTM's as ``(c,
            h)`` (zeros when ``None``; see `initial_carry`).
          seq_lengths, resets: as [`rnnjax.unroll`][rnnjax.unroll], for every layer.
          deterministic: dropout off when true; overrides the attribute.
          return_carry: also return the final carries; overrides the attribute.
          rngs: where dropout draws its key this call (``Rngs``, ``RngStream`` or a
            key); overrides the stream kept at construction.

        Returns:
          ``ys (*B, T, D*Y)``, or ``(carry, ys)`` with ``return_carry``.
        """
        model = self.stack
        training = model.has_dropout and not self._deterministic(deterministic)
        _, _, carry_batch = _validate.check_xs(
            xs, model.time_major, model.layers[0].event_ndim
        )
        carry = common.stack_from_flax(model, carry, carry_batch)
        carry, ys = model.apply(
            self.get_params(),
            xs,
            carry=carry,
            seq_lengths=seq_lengths,
            resets=resets,
            key=self._dropout_key(rngs) if training else None,
            training=training,
            options=self.options,
        )
        return_carry = self.return_carry if return_carry is None else return_carry
        return (common.stack_to_flax(carry), ys) if return_carry else ys

    def get_params(self):
        """The parameters as the plain pytree of ``stack.init``."""
        return unwrap_params(self.params)

    def set_params(self, params) -> None:
        """Loads ``params``, a pytree of ``stack.init``'s structure."""
        assign_params(self.params, params)

    def initial_carry(self, batch_shape: tuple[int, ...] = (), dtype=jnp.float32):
        """Zero carries ``carry[layer][direction]`` for batch shape ``B`` (an
        LSTM's as ``(c, h)``)."""
        return common.stack_to_flax(self.stack.initial_carry(batch_shape, dtype))

    def set_view(self, deterministic: bool | None = None):
        """Used by ``nnx.view``: ``deterministic=True`` turns dropout off."""
        if deterministic is not None:
            self.deterministic = deterministic

    def _deterministic(self, deterministic: bool | None) -> bool:
        if deterministic is not None:
            return bool(deterministic)
        if self.deterministic is None:
            raise ValueError(
                "deterministic: this RNN has dropout, so expected deterministic=True "
                "or False at the call or the constructor (or .train() / .eval()); "
                "got None in both"
            )
        return bool(self.deterministic)

    def _dropout_key(self, rngs):
        if rngs is None:
            rngs = self.rngs
        if isinstance(rngs, nnx.Rngs):
            return rngs[self.rng_collection]()
        if isinstance(rngs, nnx.RngStream):
            return rngs()
        if isinstance(rngs, jax.Array):
            return rngs
        raise TypeError(
            "rngs: dropout is on (deterministic=False), so expected an nnx.Rngs, "
            f"RngStream or key, here or at construction; got {type(rngs).__name__}"
        )


# --------------------------------------------------------------------- shorthands


class FlaxCell(Cell):
    """A `Cell` with the arguments of Flax's cell of the same name: the base of
    `LSTMCell`, `GRUCell`, `SimpleCell`, `MGUCell` and `ConvLSTMCell`.

    ``__init__(in_features, hidden_features, *, <Flax's arguments>, carry_init,
    keep_rngs, rngs, **options)``: Flax's arguments are the keys of the class's
    ``defaults`` (the values their defaults); ``options`` go to the rnnjax
    factory, over what Flax's arguments set. The class's ``factory(H, args,
    options)`` builds the rnnjax cell. Parameters are ``cell.init``'s cast to
    ``param_dtype``; a step computes in `compute_dtype`, each carry leaf out in
    the promotion of that dtype and the leaf's (Flax's arithmetic);
    ``initialize_carry`` draws each leaf with ``carry_init(key, shape,
    param_dtype)`` (zeros by default).
    """

    #: ``factory(hidden_features, args, options) -> rnnjax cell``.
    factory: ClassVar[Callable | None] = None
    #: Flax's arguments and their defaults.
    defaults: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        carry_init=None,
        keep_rngs: bool = False,
        rngs: nnx.Rngs,
        **kwargs,
    ):
        args = {k: kwargs.pop(k, v) for k, v in self.defaults.items()}
        self.hidden_features = hidden_features
        self.dtype, self.param_dtype = args["dtype"], args["param_dtype"]
        self.carry_init = carry_init
        self.rngs = rngs.carry.fork() if keep_rngs else nnx.data(None)
        super().__init__(
            type(self).factory(hidden_features, args, kwargs), in_features, rngs=rngs
        )
        params = common.cast_params(self.get_params(), self.param_dtype)
        self.params = wrap_params(params)

    def compute_dtype(self, inputs_dtype):
        """``dtype``, else the promotion of the inputs' and ``param_dtype``."""
        return common.compute_dtype(self.dtype, inputs_dtype, self.param_dtype)


_GATED = MappingProxyType(
    dict(
        gate_fn=jax.nn.sigmoid,
        activation_fn=jnp.tanh,
        kernel_init=common.lecun_normal,
        recurrent_kernel_init=common.orthogonal,
        bias_init=common.zeros,
        dtype=None,
        param_dtype=jnp.float32,
    )
)


class LSTMCell(FlaxCell):
    """Flax's ``nnx.LSTMCell``: ``rnnjax.lstm`` (fused kernels) with Flax's
    arguments and defaults: ``gate_fn`` (sigmoid), ``activation_fn`` (tanh),
    ``kernel_init`` (LeCun normal), ``recurrent_kernel_init`` (orthogonal) and
    ``bias_init`` (zeros: no forget bias) per gate, ``dtype`` (computation and
    output; default the inputs' and parameters'), ``param_dtype`` (float32);
    other keyword arguments are `rnnjax.lstm`'s. Parameters ``w_x (I, 4H)``,
    ``w_h (H, 4H)``, ``b (4H,)``, gates ``i, f, g, o``."""

    factory = staticmethod(common.flax_lstm)
    defaults = _GATED


class OptimizedLSTMCell(LSTMCell):
    """Flax's ``nnx.OptimizedLSTMCell``: `LSTMCell` (the fused kernels are the
    optimisation)."""


class GRUCell(FlaxCell):
    """Flax's ``nnx.GRUCell``: ``rnnjax.gru`` (reset after the product) with the
    arguments and defaults of `LSTMCell`; other keyword arguments are
    `rnnjax.gru`'s. Parameters ``w_x (I, 3H)``, ``w_h (H, 3H)``, ``b (3H,)`` and
    ``b_hn (H,)`` (which Flax's NNX cell lacks; zeros at initialisation)."""

    factory = staticmethod(common.flax_gru)
    defaults = _GATED


class SimpleCell(FlaxCell):
    """Flax's ``nnx.SimpleCell``: ``rnnjax.simple_rnn`` with its arguments and
    defaults (``dtype`` float32, ``residual`` False, ``activation_fn`` tanh and
    the initialisers of `LSTMCell`). Parameters ``w_x (I, H)``, ``w_h (H, H)``,
    ``b (H,)``."""

    factory = staticmethod(common.flax_simple)
    defaults = MappingProxyType(
        {k: v for k, v in _GATED.items() if k != "gate_fn"}
        | {"dtype": jnp.float32, "residual": False}
    )


class MGUCell(FlaxCell):
    """Flax linen's ``MGUCell`` (NNX has none): ``rnnjax.mgu`` in Flax's form
    (see [`rnnjax.flax.linen.MGUCell`][rnnjax.flax.linen.MGUCell]) with its
    arguments and defaults: ``forget_bias_init`` (ones) and
    ``activation_bias_init`` (zeros) in place of ``bias_init``, and
    ``reset_gate`` (True)."""

    factory = staticmethod(common.flax_mgu)
    defaults = MappingProxyType(
        {k: v for k, v in _GATED.items() if k != "bias_init"}
        | {"forget_bias_init": common.ones, "activation_bias_init": common.zeros}
        | {"reset_gate": True}
    )


class ConvLSTMCell(FlaxCell):
    """Flax linen's ``ConvLSTMCell`` (NNX has none): ``ConvLSTMCell(in_features,
    hidden_features, kernel_size=..., rngs=...)`` on ``x (*B, *S, C)``, as
    [`rnnjax.flax.linen.ConvLSTMCell`][rnnjax.flax.linen.ConvLSTMCell]."""

    factory = staticmethod(common.flax_conv_lstm)
    defaults = MappingProxyType(
        dict(kernel_size=None, strides=None, padding="SAME", use_bias=True)
        | {"dtype": None, "param_dtype": jnp.float32}
    )


class MUT1Cell(Cell):
    """[`Cell`][rnnjax.flax.nnx.Cell] of ``rnnjax.mut1(hidden_features, **options)``."""

    def __init__(
        self, in_features: int, hidden_features: int, *, rngs: nnx.Rngs, **options
    ):
        super().__init__(mut1(hidden_features, **options), in_features, rngs=rngs)


class MUT2Cell(Cell):
    """[`Cell`][rnnjax.flax.nnx.Cell] of ``rnnjax.mut2(hidden_features, **options)``."""

    def __init__(
        self, in_features: int, hidden_features: int, *, rngs: nnx.Rngs, **options
    ):
        super().__init__(mut2(hidden_features, **options), in_features, rngs=rngs)


class MUT3Cell(Cell):
    """[`Cell`][rnnjax.flax.nnx.Cell] of ``rnnjax.mut3(hidden_features, **options)``."""

    def __init__(
        self, in_features: int, hidden_features: int, *, rngs: nnx.Rngs, **options
    ):
        super().__init__(mut3(hidden_features, **options), in_features, rngs=rngs)

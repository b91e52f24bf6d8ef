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

``LSTMCell``, ``GRUCell``, ``SimpleCell``, ``MGUCell`` and ``MUT1Cell``-``MUT3Cell``
are subclasses of [`Cell`][rnnjax.flax.nnx.Cell] with the signature of ``nnx.LSTMCell``
(``in_features, hidden_features, *, rngs``) plus the rnnjax factory's keyword
arguments, e.g. ``LSTMCell(32, 64, peephole=True, rngs=rngs)`` holds
``rnnjax.lstm(64, peephole=True)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from rnnjax import _validate
from rnnjax.cells import base
from rnnjax.cells.gru import gru, mgu
from rnnjax.cells.lstm import lstm
from rnnjax.cells.mut import mut1, mut2, mut3
from rnnjax.cells.simple import simple_rnn
from rnnjax.flax._common import build_stack
from rnnjax.unroll import UnrollOptions

__all__ = [
    "RNN",
    "Cell",
    "GRUCell",
    "LSTMCell",
    "MGUCell",
    "MUT1Cell",
    "MUT2Cell",
    "MUT3Cell",
    "SimpleCell",
]


class Cell(nnx.RNNCellBase):
    """One step of an rnnjax cell, as an ``nnx.RNNCellBase``.

    ``__call__(carry, x) -> (carry, y)`` is ``cell.step`` on ``x (*B, I)``;
    ``initialize_carry(input_shape, rngs=None, carry_init=None)`` is
    ``cell.initial_carry(input_shape[:-1])`` (zeros), or ``carry_init(key, shape,
    dtype)`` on each of its leaves when given (keys from ``rngs.carry``).

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
        self.params = _wrap(cell.init(rngs.params(), in_features))

    def __call__(self, carry, inputs):
        params = self.get_params()
        base.check_params(self.cell, params, inputs.shape[-1])
        return self.cell.step(params, carry, inputs)

    def get_params(self):
        """The parameters as the plain pytree of ``cell.init``."""
        return _unwrap(self.params)

    def set_params(self, params) -> None:
        """Loads ``params``, a pytree of ``cell.init``'s structure."""
        _assign(self.params, params)

    def initialize_carry(
        self,
        input_shape: tuple[int, ...],
        rngs: nnx.Rngs | nnx.RngStream | None = None,
        carry_init=None,
    ):
        """The carry for inputs of shape ``(*B, I)``: zeros, or ``carry_init``."""
        carry = self.cell.initial_carry(tuple(input_shape[:-1]))
        if carry_init is None:
            return carry
        stream = rngs.carry if isinstance(rngs, nnx.Rngs) else rngs
        if stream is None:
            raise ValueError("rngs: carry_init needs an Rngs or RngStream, got None")
        return jax.tree.map(lambda c: carry_init(stream(), c.shape, c.dtype), carry)

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
        self.params = _wrap(self.stack.init(rngs.params(), in_features))
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
          carry: initial carries ``carry[layer][direction]`` (zeros when ``None``;
            see `initial_carry`).
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
        return (carry, ys) if return_carry else ys

    def get_params(self):
        """The parameters as the plain pytree of ``stack.init``."""
        return _unwrap(self.params)

    def set_params(self, params) -> None:
        """Loads ``params``, a pytree of ``stack.init``'s structure."""
        _assign(self.params, params)

    def initial_carry(self, batch_shape: tuple[int, ...] = (), dtype=jnp.float32):
        """Zero carries ``carry[layer][direction]`` for batch shape ``B``."""
        return self.stack.initial_carry(batch_shape, dtype)

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


# ------------------------------------------------------------------------ parameters


def _is_variable(x) -> bool:
    return isinstance(x, nnx.Variable)


def _wrap(params):
    """rnnjax's parameter pytree with each array in its own ``nnx.Param``."""
    return nnx.data(jax.tree.map(nnx.Param, params))


def _unwrap(tree):
    return jax.tree.map(lambda v: v.get_value(), tree, is_leaf=_is_variable)


def _assign(tree, params) -> None:
    expected = jax.tree.structure(tree, is_leaf=_is_variable)
    got = jax.tree.structure(params)
    if got != expected:
        raise ValueError(f"params: expected the structure {expected}, got {got}")
    for var, value in zip(
        jax.tree.leaves(tree, is_leaf=_is_variable),
        jax.tree.leaves(params),
        strict=True,
    ):
        var.set_value(value)


# --------------------------------------------------------------------- shorthands


class LSTMCell(Cell):
    """[`Cell`][rnnjax.flax.nnx.Cell] of ``rnnjax.lstm(hidden_features, **options)``."""

    def __init__(
        self, in_features: int, hidden_features: int, *, rngs: nnx.Rngs, **options
    ):
        super().__init__(lstm(hidden_features, **options), in_features, rngs=rngs)


class GRUCell(Cell):
    """[`Cell`][rnnjax.flax.nnx.Cell] of ``rnnjax.gru(hidden_features, **options)``."""

    def __init__(
        self, in_features: int, hidden_features: int, *, rngs: nnx.Rngs, **options
    ):
        super().__init__(gru(hidden_features, **options), in_features, rngs=rngs)


class SimpleCell(Cell):
    """`Cell` of ``rnnjax.simple_rnn(hidden_features, **options)``."""

    def __init__(
        self, in_features: int, hidden_features: int, *, rngs: nnx.Rngs, **options
    ):
        cell = simple_rnn(hidden_features, **options)
        super().__init__(cell, in_features, rngs=rngs)


class MGUCell(Cell):
    """[`Cell`][rnnjax.flax.nnx.Cell] of ``rnnjax.mgu(hidden_features, **options)``."""

    def __init__(
        self, in_features: int, hidden_features: int, *, rngs: nnx.Rngs, **options
    ):
        super().__init__(mgu(hidden_features, **options), in_features, rngs=rngs)


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

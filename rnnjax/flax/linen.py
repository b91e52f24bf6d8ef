"""Flax linen modules over rnnjax cells and stacks.

`Cell` makes any rnnjax cell a drop-in cell for Flax's own ``nn.RNN`` and
``nn.Bidirectional`` (the ``nn.RNNCellBase`` interface):

    import flax.linen as nn
    import rnnjax
    from rnnjax.flax import linen as rnn

    layer = nn.RNN(rnn.Cell(rnnjax.lstm(64, peephole=True)))
    layer = nn.RNN(rnn.LSTMCell(64, options={"peephole": True}))   # the same

`RNN` is a whole `rnnjax.stack` (layers, both directions, dropout) run
by rnnjax's fused unroll, with ``seq_lengths`` and ``resets``:

    layer = rnn.RNN(rnnjax.gru(128), num_layers=2, bidirectional=True, dropout=0.1)
    variables = layer.init(jax.random.key(0), xs)                  # xs (B, T, I)
    ys = layer.apply(variables, xs, deterministic=False,
                     rngs={"dropout": jax.random.key(1)})          # (B, T, 256)

Parameters: a `Cell` holds one entry, ``params["cell"]``, exactly the
pytree ``cell.init(key, I)`` returns; an `RNN` holds ``params["stack"]``,
exactly the ``Stack.init`` pytree (``[layer][direction]``). So
``cell.step(variables["params"]["cell"], carry, x)`` and
``layer.stack.apply(variables["params"]["stack"], xs)`` give the module's results,
and parameters made by rnnjax load into the modules unchanged.

``LSTMCell``, ``GRUCell``, ``SimpleCell``, ``MGUCell`` and ``MUT1Cell``-``MUT3Cell``
are subclasses of `Cell` (through `FactoryCell`) that build their
rnnjax cell from ``features`` and an ``options`` mapping of the rnnjax factory's
keyword arguments: ``LSTMCell(64, options={"peephole": True})`` runs
``rnnjax.lstm(64, peephole=True)``, and its submodule name is ``LSTMCell_<n>``, as
Flax's own ``nn.LSTMCell``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import flax.linen as nn
import jax.numpy as jnp
from flax.core import FrozenDict

from rnnjax import _validate
from rnnjax.cells import base
from rnnjax.cells.gru import gru, mgu
from rnnjax.cells.lstm import lstm
from rnnjax.cells.mut import mut1, mut2, mut3
from rnnjax.cells.simple import simple_rnn
from rnnjax.flax._common import build_stack
from rnnjax.layers import Stack
from rnnjax.unroll import UnrollOptions

__all__ = [
    "RNN",
    "Cell",
    "FactoryCell",
    "GRUCell",
    "LSTMCell",
    "MGUCell",
    "MUT1Cell",
    "MUT2Cell",
    "MUT3Cell",
    "SimpleCell",
]


class Cell(nn.RNNCellBase):
    """One step of an rnnjax cell, as a linen ``RNNCellBase``.

    ``__call__(carry, x) -> (carry, y)`` is ``cell.step`` on ``x (*B, I)``;
    ``initialize_carry(rng, input_shape)`` is ``cell.initial_carry(input_shape[:-1])``
    (zeros; ``rng`` is unused). Use it inside ``nn.RNN`` / ``nn.Bidirectional``,
    or call it step by step.

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
        # Flax checks loaded parameters against init's shapes (ScopeParamShapeError).
        params = self.param("cell", self.cell.init, inputs.shape[-1])
        return self.cell.step(params, carry, inputs)

    @nn.nowrap
    def initialize_carry(self, rng, input_shape: tuple[int, ...]):
        """The cell's zero carry for inputs of shape ``(*B, I)`` (``rng`` unused)."""
        del rng
        return self.cell.initial_carry(tuple(input_shape[:-1]))

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
      num_layers:
        as [`rnnjax.stack`][rnnjax.stack].
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
          carry: initial carries ``carry[layer][direction]`` (zeros when ``None``;
            see `initial_carry`).
          seq_lengths, resets: as [`rnnjax.unroll`][rnnjax.unroll], for every layer.
          deterministic: dropout off when true; overrides the attribute.
          return_carry: also return the final carries; overrides the attribute.

        Returns:
          ``ys (*B, T, D*Y)``, or ``(carry, ys)`` with ``return_carry``.
        """
        model = self.stack
        params = self.param("stack", model.init, xs.shape[-1])
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
        return (carry, ys) if return_carry else ys

    @nn.nowrap
    def initial_carry(self, batch_shape: tuple[int, ...] = (), dtype=jnp.float32):
        """Zero carries ``carry[layer][direction]`` for batch shape ``B``."""
        return self.stack.initial_carry(batch_shape, dtype)


# --------------------------------------------------------------------- shorthands


class FactoryCell(Cell):
    """A `Cell` whose rnnjax cell is built from ``features`` and
    ``options`` by `make_cell` (its ``factory`` by default); the base of
    `LSTMCell` and the other shorthands. A subclass sets ``factory`` or overrides
    `make_cell` (and may add fields).

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


class LSTMCell(FactoryCell):
    """[`Cell`][rnnjax.flax.linen.Cell] of ``rnnjax.lstm(features, **options)``."""

    factory = staticmethod(lstm)


class GRUCell(FactoryCell):
    """[`Cell`][rnnjax.flax.linen.Cell] of ``rnnjax.gru(features, **options)``."""

    factory = staticmethod(gru)


class SimpleCell(FactoryCell):
    """`Cell` of ``rnnjax.simple_rnn(features, **options)``."""

    factory = staticmethod(simple_rnn)


class MGUCell(FactoryCell):
    """[`Cell`][rnnjax.flax.linen.Cell] of ``rnnjax.mgu(features, **options)``."""

    factory = staticmethod(mgu)


class MUT1Cell(FactoryCell):
    """[`Cell`][rnnjax.flax.linen.Cell] of ``rnnjax.mut1(features, **options)``."""

    factory = staticmethod(mut1)


class MUT2Cell(FactoryCell):
    """[`Cell`][rnnjax.flax.linen.Cell] of ``rnnjax.mut2(features, **options)``."""

    factory = staticmethod(mut2)


class MUT3Cell(FactoryCell):
    """[`Cell`][rnnjax.flax.linen.Cell] of ``rnnjax.mut3(features, **options)``."""

    factory = staticmethod(mut3)

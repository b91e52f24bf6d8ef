"""Flax linen modules over rnnjax cells and stacks.

:class:`Cell` makes any rnnjax cell a drop-in cell for Flax's own ``nn.RNN`` and
``nn.Bidirectional`` (the ``nn.RNNCellBase`` interface)::

    import flax.linen as nn
    import rnnjax
    from rnnjax.flax import linen as rnn

    layer = nn.RNN(rnn.Cell(rnnjax.lstm(64, peephole=True)))
    layer = nn.RNN(rnn.LSTMCell(64, peephole=True))       # the same

:class:`RNN` is a whole :func:`rnnjax.stack` (layers, both directions, dropout) run
by rnnjax's fused unroll, with ``seq_lengths`` and ``resets``::

    layer = rnn.RNN(rnnjax.gru(128), num_layers=2, bidirectional=True, dropout=0.1)
    variables = layer.init(jax.random.key(0), xs)                  # xs (B, T, I)
    ys = layer.apply(variables, xs, deterministic=False,
                     rngs={"dropout": jax.random.key(1)})          # (B, T, 256)

Parameters: a :class:`Cell` holds one entry, ``params["cell"]``, exactly the
pytree ``cell.init(key, I)`` returns; an :class:`RNN` holds ``params["stack"]``,
exactly the ``Stack.init`` pytree (``[layer][direction]``). So
``cell.step(variables["params"]["cell"], carry, x)`` and
``layer.stack.apply(variables["params"]["stack"], xs)`` give the module's results,
and parameters made by rnnjax load into the modules unchanged.

``LSTMCell``, ``GRUCell``, ``SimpleCell``, ``MGUCell`` and ``MUT1Cell``-``MUT3Cell``
are shorthands: functions that return a :class:`Cell` (so their submodule name is
``Cell_<n>`` unless ``name=`` is given), e.g. ``LSTMCell(64, peephole=True)`` is
``Cell(rnnjax.lstm(64, peephole=True))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from rnnjax import _validate
from rnnjax.cells import base
from rnnjax.cells.gru import gru, mgu
from rnnjax.cells.lstm import lstm
from rnnjax.cells.mut import mut1, mut2, mut3
from rnnjax.cells.simple import simple_rnn
from rnnjax.layers import Stack, stack

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
    """A stack of recurrent layers (:func:`rnnjax.stack`) run by rnnjax's unroll.

    Attributes:
      cells: one rnnjax cell (repeated ``num_layers`` times) or a sequence of cells,
        one per layer.
      num_layers, bidirectional, dropout, input_dropout, recurrent_dropout, time_major:
        as :func:`rnnjax.stack`.
      impl: ``"auto"``, ``"scan"``, ``"fused"``, ``"associative"`` or ``"pallas"``, as
        :func:`rnnjax.unroll`.
      unroll: steps per loop iteration of ``lax.scan``.
      remat, chunk_size: memory for reverse mode (``None``, ``"step"`` or
        ``"chunk"``), as :func:`rnnjax.unroll`.
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
    impl: str = "auto"
    unroll: int = 1
    remat: str | None = None
    chunk_size: int | None = None
    deterministic: bool | None = None
    return_carry: bool = False
    rng_collection: str = "dropout"

    @property
    def stack(self) -> Stack:
        """The :class:`rnnjax.Stack` this module runs."""
        cells = self.cells
        if isinstance(cells, Sequence):
            cells = tuple(cells)
        return stack(
            cells,
            self.num_layers,
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
            see :meth:`initial_carry`).
          seq_lengths, resets: as :func:`rnnjax.unroll`, for every layer.
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
            impl=self.impl,
            unroll=self.unroll,
            remat=self.remat,
            chunk_size=self.chunk_size,
        )
        return_carry = self.return_carry if return_carry is None else return_carry
        return (carry, ys) if return_carry else ys

    @nn.nowrap
    def initial_carry(self, batch_shape: tuple[int, ...] = (), dtype=jnp.float32):
        """Zero carries ``carry[layer][direction]`` for batch shape ``B``."""
        return self.stack.initial_carry(batch_shape, dtype)


# ------------------------------------------------------------- shorthand constructors


def _shorthand(factory, flax_name: str):
    def make(features: int, *, name: str | None = None, **options) -> Cell:
        return Cell(factory(features, **options), name=name)

    make.__name__ = make.__qualname__ = flax_name
    make.__doc__ = (
        f"``Cell(rnnjax.{factory.__name__}(features, **options))``; ``name`` is the "
        f"submodule name. See :func:`rnnjax.{factory.__name__}` for the options."
    )
    return make


LSTMCell = _shorthand(lstm, "LSTMCell")
"""``LSTMCell(features, *, name=None, **options)`` is
``Cell(rnnjax.lstm(features, **options), name=name)``."""
GRUCell = _shorthand(gru, "GRUCell")
"""``GRUCell(features, *, name=None, **options)`` is
``Cell(rnnjax.gru(features, **options), name=name)``."""
SimpleCell = _shorthand(simple_rnn, "SimpleCell")
"""``SimpleCell(features, *, name=None, **options)`` is
``Cell(rnnjax.simple_rnn(features, **options), name=name)``."""
MGUCell = _shorthand(mgu, "MGUCell")
"""``MGUCell(features, *, name=None, **options)`` is
``Cell(rnnjax.mgu(features, **options), name=name)``."""
MUT1Cell = _shorthand(mut1, "MUT1Cell")
"""``MUT1Cell(features, *, name=None, **options)`` is
``Cell(rnnjax.mut1(features, **options), name=name)``."""
MUT2Cell = _shorthand(mut2, "MUT2Cell")
"""``MUT2Cell(features, *, name=None, **options)`` is
``Cell(rnnjax.mut2(features, **options), name=name)``."""
MUT3Cell = _shorthand(mut3, "MUT3Cell")
"""``MUT3Cell(features, *, name=None, **options)`` is
``Cell(rnnjax.mut3(features, **options), name=name)``."""

"""Stacks of recurrent layers: depth, both directions, dropout between layers and
variational dropout (Gal & Ghahramani 2016)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from rnnjax import _validate
from rnnjax.cells import base
from rnnjax.cells.base import check_key
from rnnjax.unroll import UnrollOptions
from rnnjax.unroll import unroll as unroll_cell


@dataclasses.dataclass(frozen=True)
class Stack:
    """``num_layers`` recurrent layers, each optionally bidirectional.

    Build it with :func:`rnnjax.stack`. Parameters are a tuple over layers of a
    tuple over directions (forward, then backward) of cell parameters; carries have
    the same nesting.

    Attributes:
      cells: one cell per layer (both directions of a layer share its configuration).
      bidirectional: run each layer both ways and concatenate the outputs.
      dropout: rate of ordinary dropout on each layer's outputs except the last
        (a fresh mask per step, as PyTorch's ``dropout``).
      input_dropout: variational dropout rate on each layer's inputs (one mask per
        sequence).
      recurrent_dropout: variational dropout rate on the state where it enters the
        recurrent products (one mask per sequence).
      time_major: default layout of ``xs`` and outputs, ``(T, *B, F)``.
    """

    cells: tuple
    bidirectional: bool = False
    dropout: float = 0.0
    input_dropout: float = 0.0
    recurrent_dropout: float = 0.0
    time_major: bool = False

    @property
    def num_layers(self) -> int:
        return len(self.cells)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        return base.output_size(self.cells[-1]) * self.num_directions

    @property
    def has_dropout(self) -> bool:
        return bool(self.dropout or self.input_dropout or self.recurrent_dropout)

    def init(self, key, input_size: int):
        """Parameters: ``params[layer][direction]`` for inputs of size ``I``."""
        check_key(key, "key")
        params, size = [], input_size
        for layer, cell in enumerate(self.cells):
            keys = jax.random.split(jax.random.fold_in(key, layer), self.num_directions)
            params.append(tuple(cell.init(k, size) for k in keys))
            size = base.output_size(cell) * self.num_directions
        return tuple(params)

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        """Zero carries, ``carry[layer][direction]``."""
        return tuple(
            tuple(
                cell.initial_carry(batch_shape, dtype)
                for _ in range(self.num_directions)
            )
            for cell in self.cells
        )

    def apply(
        self,
        params,
        xs,
        *,
        carry=None,
        seq_lengths=None,
        resets=None,
        key=None,
        training: bool = False,
        time_major: bool | None = None,
        impl: str = "auto",
        unroll: int = 1,
        remat: str | None = None,
        chunk_size: int | None = None,
    ):
        """Runs the stack over ``xs (*B, T, I)`` (``(T, *B, I)`` when time-major).

        Args:
          params: from :meth:`init`.
          xs: the inputs.
          carry: initial carries ``carry[layer][direction]`` (zeros when ``None``).
          seq_lengths, resets: as in :func:`rnnjax.unroll`, for every layer.
          key: PRNG key for dropout; needed when ``training`` and a rate is set.
          training: apply dropout (off at evaluation).
          time_major: overrides the stack's default layout.
          impl, unroll, remat, chunk_size: as in :func:`rnnjax.unroll`, for every
            layer.

        Returns:
          ``(carry, ys)``: final carries ``carry[layer][direction]`` (each the one at
          its last valid step) and the last layer's outputs ``(*B, T, D*Y)``.
        """
        time_major = self.time_major if time_major is None else time_major
        event_ndim = base.event_ndim(self.cells[0])
        num_steps, batch_shape, _ = _validate.check_xs(xs, time_major, event_ndim)
        self._check_key(key, training)
        carry = self._check_carry(carry)
        resets = _validate.check_resets(resets, batch_shape, num_steps, time_major)
        xs = xs if time_major else jnp.moveaxis(xs, -(event_ndim + 1), 0)
        drop = training and self.has_dropout
        keys = (
            jax.random.split(key, self.num_layers) if drop else [None] * len(self.cells)
        )

        unroll_options = UnrollOptions(
            impl=impl, unroll=unroll, remat=remat, chunk_size=chunk_size
        )
        options = dict(options=unroll_options)
        finals = []
        for layer, cell in enumerate(self.cells):
            layer_keys = jax.random.split(keys[layer], 3) if drop else [None] * 3
            final, xs = self._layer(
                cell,
                params[layer],
                xs,
                carry and carry[layer],
                seq_lengths,
                resets,
                layer_keys[:2],
                options,
            )
            finals.append(final)
            if drop and self.dropout and layer + 1 < self.num_layers:
                xs = _dropout(layer_keys[2], self.dropout, xs)
        return tuple(finals), (
            xs if time_major else jnp.moveaxis(xs, 0, -(event_ndim + 1))
        )

    def _layer(self, cell, params, xs, carry, seq_lengths, resets, keys, options):
        """One layer, both directions, time-major; returns ``(finals, ys)``.
        ``options``: keyword arguments of :func:`rnnjax.unroll`."""
        finals, outputs = [], []
        for direction in range(self.num_directions):
            p = params[direction]
            inputs, rec_mask = xs, None
            if keys[0] is not None:
                k_in, k_rec = jax.random.split(jax.random.fold_in(keys[0], direction))
                inputs = self._input_mask(k_in, xs)
                rec_mask = self._recurrent_mask(k_rec, cell, p, xs.shape[1:-1])
            final, ys = unroll_cell(
                cell,
                p,
                inputs,
                carry=None if carry is None else carry[direction],
                seq_lengths=seq_lengths,
                reverse=direction == 1,
                time_major=True,
                resets=resets,
                rec_mask=rec_mask,
                **options,
            )
            finals.append(final)
            outputs.append(ys)
        ys = outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs, axis=-1)
        return tuple(finals), ys

    def _input_mask(self, key, xs):
        if not self.input_dropout:
            return xs
        mask = _mask(key, self.input_dropout, xs.shape[1:])
        return xs * mask[None].astype(xs.dtype)

    def _recurrent_mask(self, key, cell, params, batch_shape):
        if not self.recurrent_dropout:
            return None
        width = base.rec_width(cell, params)
        return _mask(key, self.recurrent_dropout, (*batch_shape, width))

    def _check_key(self, key, training: bool) -> None:
        if key is not None:
            if not self.has_dropout:
                raise TypeError(
                    "key: this stack has no dropout, so expected key=None; got a key"
                )
            check_key(key, "key")
        elif training and self.has_dropout:
            raise TypeError(
                "key: training=True with dropout needs a PRNG key; got None"
            )

    def _check_carry(self, carry):
        if carry is None:
            return None
        ok = (
            isinstance(carry, (tuple, list))
            and len(carry) == self.num_layers
            and all(
                isinstance(c, (tuple, list)) and len(c) == self.num_directions
                for c in carry
            )
        )
        if not ok:
            raise ValueError(
                f"carry: expected a tuple of {self.num_layers} layer(s), each a tuple "
                f"of {self.num_directions} direction carries (see initial_carry); got "
                f"{type(carry).__name__} of length {_len(carry)}"
            )
        return carry


def _len(x):
    return len(x) if hasattr(x, "__len__") else "n/a"


def _mask(key, rate, shape):
    """Inverted-dropout mask: 0 with probability ``rate``, else ``1 / (1 - rate)``."""
    keep = jax.random.bernoulli(key, 1.0 - rate, shape)
    return keep.astype(jnp.float32) / (1.0 - rate)


def _dropout(key, rate, xs):
    return xs * _mask(key, rate, xs.shape).astype(xs.dtype)


def stack(
    cells,
    num_layers: int | None = None,
    *,
    bidirectional: bool = False,
    dropout: float = 0.0,
    input_dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    time_major: bool = False,
) -> Stack:
    """Builds a :class:`Stack` of recurrent layers.

    Args:
      cells: one cell (repeated ``num_layers`` times) or a sequence of cells, one per
        layer (mixed cell types allowed).
      num_layers: number of layers (default 1, or ``len(cells)``).
      bidirectional, dropout, input_dropout, recurrent_dropout, time_major: see
        :class:`Stack`.

    Example::

        model = rnnjax.stack(rnnjax.lstm(128), num_layers=2, bidirectional=True)
        params = model.init(jax.random.key(0), input_size=32)
        carry, ys = model.apply(params, xs)            # ys: (B, T, 256)
    """
    if isinstance(cells, Sequence):
        cells = tuple(cells)
        if num_layers is not None and num_layers != len(cells):
            raise ValueError(
                f"num_layers: expected {len(cells)} (one per cell given) or None, got "
                f"{num_layers}"
            )
    else:
        if num_layers is None:
            num_layers = 1
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers: expected a positive int, got {num_layers!r}")
        cells = (cells,) * num_layers
    if not cells:
        raise ValueError("cells: expected at least one cell, got none")
    for i, cell in enumerate(cells):
        _validate.check_cell(cell, f"cells[{i}]")
        if base.event_ndim(cell) != base.event_ndim(cells[0]):
            raise ValueError(
                f"cells[{i}]: expected a cell whose step input has "
                f"{base.event_ndim(cells[0])} axis(es) like cells[0], got "
                f"{base.event_ndim(cell)}"
            )
    return Stack(
        cells,
        bidirectional=bool(bidirectional),
        dropout=_validate.check_rate(dropout, "dropout"),
        input_dropout=_validate.check_rate(input_dropout, "input_dropout"),
        recurrent_dropout=_validate.check_rate(recurrent_dropout, "recurrent_dropout"),
        time_major=bool(time_major),
    )

"""A `Stack` of recurrent layers (each a `Layer` or a
`Bidirectional`) with dropout between them, and `stack`, which builds
the usual one."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from rnnjax import _validate
from rnnjax.cells import base
from rnnjax.cells.base import check_key
from rnnjax.layers.directional import (
    Bidirectional,
    Layer,
    check_dropout_key,
    check_options,
    concatenate,
    dropout_mask,
)
from rnnjax.unroll import UnrollOptions


@dataclasses.dataclass(frozen=True)
class Stack:
    """Recurrent layers on top of each other, each a `Layer` or a
    `Bidirectional`, with dropout between them.

    Build the usual one with `rnnjax.stack`. Parameters and carries are a
    tuple over layers of a tuple over directions (forward, then backward; a
    single `Layer`'s entry has one element): ``params[layer][direction]``.

    Attributes:
      layers: the layers, bottom first.
      dropout: rate of ordinary dropout on each layer's outputs except the last
        (a fresh mask per step, as PyTorch's ``dropout``).
      time_major: default layout of ``xs`` and outputs, ``(T, *B, F)``.
    """

    layers: tuple
    dropout: float = 0.0
    time_major: bool = False

    def __post_init__(self):
        layers = tuple(self.layers) if isinstance(self.layers, Sequence) else ()
        if not layers:
            raise ValueError(f"layers: expected at least one layer, got {layers!r}")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer | Bidirectional):
                raise TypeError(
                    f"layers[{i}]: expected an rnnjax.Layer or rnnjax.Bidirectional, "
                    f"got {type(layer).__name__}"
                )
            if layer.event_ndim != layers[0].event_ndim:
                raise ValueError(
                    f"layers[{i}]: expected a cell whose step input has "
                    f"{layers[0].event_ndim} axis(es) like layers[0], got "
                    f"{layer.event_ndim}"
                )
        object.__setattr__(self, "layers", layers)
        object.__setattr__(
            self, "dropout", _validate.check_rate(self.dropout, "dropout")
        )

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def cells(self) -> tuple:
        """Each layer's cell (a bidirectional layer's forward cell)."""
        return tuple(_directions(layer)[0].cell for layer in self.layers)

    @property
    def bidirectional(self) -> bool:
        """Every layer is a `Bidirectional`."""
        return all(isinstance(layer, Bidirectional) for layer in self.layers)

    @property
    def num_directions(self) -> int:
        """Directions of every layer: 2 when `bidirectional`, else 1 (a stack
        mixing both kinds raises ``ValueError``: see each layer)."""
        counts = {len(_directions(layer)) for layer in self.layers}
        if len(counts) > 1:
            raise ValueError(
                "num_directions: this stack mixes one- and two-direction layers; "
                "see len(params[layer]) for each layer"
            )
        return counts.pop()

    @property
    def input_dropout(self) -> float:
        """The largest variational input dropout rate of any direction."""
        return max(d.input_dropout for d in self._all_directions())

    @property
    def recurrent_dropout(self) -> float:
        """The largest variational recurrent dropout rate of any direction."""
        return max(d.recurrent_dropout for d in self._all_directions())

    @property
    def output_size(self) -> int:
        return self.layers[-1].output_size

    @property
    def has_dropout(self) -> bool:
        return bool(self.dropout) or any(layer.has_dropout for layer in self.layers)

    def _all_directions(self):
        return [d for layer in self.layers for d in _directions(layer)]

    def init(self, key, input_size: int):
        """Parameters ``params[layer][direction]`` for inputs of size ``I``; layer
        ``i`` draws from ``fold_in(key, i)``."""
        check_key(key, "key")
        params, size = [], input_size
        for i, layer in enumerate(self.layers):
            k = jax.random.fold_in(key, i)
            if isinstance(layer, Bidirectional):
                params.append(layer.init(k, size))
            else:  # split as a bidirectional layer does: the same key, the same
                # parameters as before layers were composed
                params.append((layer.init(jax.random.split(k, 1)[0], size),))
            size = layer.output_size
        return tuple(params)

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        """Zero carries, ``carry[layer][direction]``."""
        return tuple(
            tuple(d.initial_carry(batch_shape, dtype) for d in _directions(layer))
            for layer in self.layers
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
        options: UnrollOptions | None = None,
    ):
        """Runs the stack over ``xs (*B, T, I)`` (``(T, *B, I)`` when time-major).

        Args:
          params: from `init`.
          xs: the inputs.
          carry: initial carries ``carry[layer][direction]`` (zeros when ``None``).
          seq_lengths, resets: as in [`rnnjax.unroll`][rnnjax.unroll], for every layer.
          key: PRNG key for dropout; needed when ``training`` and a rate is set.
            Layer ``i`` uses ``split(split(key, L)[i], 3)``: the first for its
            variational masks (``fold_in(., d)`` for direction ``d``), the third
            for the dropout on its outputs (one mask over ``(T, *B, Y)``).
          training: apply dropout (off at evaluation).
          time_major: overrides the stack's default layout.
          options: how every layer's recurrence runs
            ([`rnnjax.UnrollOptions`][rnnjax.UnrollOptions]).

        Returns:
          ``(carry, ys)``: final carries ``carry[layer][direction]`` (each the one at
          its last valid step) and the last layer's outputs ``(*B, T, Y_out)``.
        """
        options = check_options(options)
        time_major = self.time_major if time_major is None else time_major
        event_ndim = self.layers[0].event_ndim
        num_steps, batch_shape, _ = _validate.check_xs(xs, time_major, event_ndim)
        check_dropout_key(key, training, self.has_dropout, "stack")
        self._check_params(params)
        self._check_carry(carry)
        resets = _validate.check_resets(resets, batch_shape, num_steps, time_major)
        xs = xs if time_major else jnp.moveaxis(xs, -(event_ndim + 1), 0)
        drop = training and self.has_dropout
        keys = jax.random.split(key, self.num_layers) if drop else None

        finals = []
        for i, layer in enumerate(self.layers):
            layer_keys = jax.random.split(keys[i], 3) if drop else None
            var_key = layer_keys[0] if drop and layer.has_dropout else None
            layer_carry = None if carry is None else carry[i]
            # A single Layer's entry is direction 0 of its layer, as in Bidirectional.
            single = isinstance(layer, Layer)
            if single:
                layer_carry = None if carry is None else layer_carry[0]
                var_key = None if var_key is None else jax.random.fold_in(var_key, 0)
            final, xs = layer.apply(
                params[i][0] if single else params[i],
                xs,
                carry=layer_carry,
                seq_lengths=seq_lengths,
                resets=resets,
                key=var_key,
                training=var_key is not None,
                time_major=True,
                options=options,
            )
            finals.append((final,) if single else final)
            if drop and self.dropout and i + 1 < self.num_layers:
                mask = dropout_mask(layer_keys[2], self.dropout, xs.shape)
                xs = xs * mask.astype(xs.dtype)
        return tuple(finals), (
            xs if time_major else jnp.moveaxis(xs, 0, -(event_ndim + 1))
        )

    def _check_params(self, params) -> None:
        """``params[layer][direction]`` with this stack's layers and directions."""
        expected = [len(_directions(layer)) for layer in self.layers]
        got = _entry_counts(params)
        if got != expected:
            raise ValueError(
                f"params: expected a tuple of {self.num_layers} layer(s) with "
                f"{_describe(expected)} direction(s) (see init), got "
                f"{_describe_tree(params, got)}"
            )

    def _check_carry(self, carry) -> None:
        if carry is None:
            return
        counts = [len(_directions(layer)) for layer in self.layers]
        ok = (
            isinstance(carry, tuple | list)
            and len(carry) == self.num_layers
            and all(
                isinstance(c, tuple | list) and len(c) == n
                for c, n in zip(carry, counts, strict=False)
            )
        )
        if not ok:
            each = counts[0] if len(set(counts)) == 1 else counts
            raise ValueError(
                f"carry: expected a tuple of {self.num_layers} layer(s), each a tuple "
                f"of {each} direction carries (see initial_carry); got "
                f"{type(carry).__name__} of length {_len(carry)}"
            )


def _directions(layer) -> tuple:
    if isinstance(layer, Bidirectional):
        return layer.forward, layer.backward
    return (layer,)


def _len(x):
    return len(x) if hasattr(x, "__len__") else "n/a"


def _entry_counts(tree):
    """``[len(tree[i]), ...]`` for a tuple of tuples (``None`` where an entry is
    not one); ``None`` when ``tree`` is not a tuple or list."""
    if not isinstance(tree, tuple | list):
        return None
    return [len(e) if isinstance(e, tuple | list) else None for e in tree]


def _describe(counts) -> str:
    return str(counts[0]) if len(set(counts)) == 1 else f"{counts} respectively"


def _describe_tree(tree, counts) -> str:
    if counts is None:
        return type(tree).__name__
    per_layer = ["not a tuple" if c is None else c for c in counts]
    return (
        f"{type(tree).__name__} of {len(counts)} layer(s) with {per_layer} direction(s)"
    )


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
    """Builds a `Stack`: one `Layer` per cell, or one
    `Bidirectional` (concatenating, both directions of the layer's cell)
    with ``bidirectional``.

    Args:
      cells: one cell (repeated ``num_layers`` times) or a sequence of cells, one per
        layer (mixed cell types allowed).
      num_layers: number of layers (default 1, or ``len(cells)``).
      bidirectional: run each layer both ways and concatenate the outputs.
      dropout: see `Stack`.
      input_dropout: variational rates of every direction (see
        `Layer`).
      recurrent_dropout: as ``input_dropout``.
      time_major: see `Stack`.

    Example:

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
    rates = dict(
        input_dropout=_validate.check_rate(input_dropout, "input_dropout"),
        recurrent_dropout=_validate.check_rate(recurrent_dropout, "recurrent_dropout"),
        time_major=bool(time_major),
    )
    if bidirectional:
        layers = tuple(
            Bidirectional(
                Layer(c, **rates),
                Layer(c, reverse=True, **rates),
                concatenate,
                bool(time_major),
            )
            for c in cells
        )
    else:
        layers = tuple(Layer(c, **rates) for c in cells)
    return Stack(
        layers,
        dropout=_validate.check_rate(dropout, "dropout"),
        time_major=bool(time_major),
    )

"""One direction (`Layer`) and both directions with a merge
(`Bidirectional`), as Flax's ``nn.RNN`` and ``nn.Bidirectional``.

Variational dropout (Gal & Ghahramani 2016) belongs to each direction: one input
mask and one recurrent mask per sequence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from rnnjax import _validate
from rnnjax.cells import base
from rnnjax.cells.base import check_key
from rnnjax.unroll import UnrollOptions
from rnnjax.unroll import unroll as unroll_cell


def concatenate(forward, backward):
    """The default merge of `Bidirectional`: ``(..., Y) + (..., Y) -> (...,
    2Y)``, forward features first (as PyTorch and Keras' ``merge_mode="concat"``)."""
    return jnp.concatenate([forward, backward], axis=-1)


@dataclasses.dataclass(frozen=True)
class Layer:
    """One direction: a cell run over time by [`rnnjax.unroll`][rnnjax.unroll].

    Attributes:
      cell: an rnnjax cell.
      reverse: run from the end of each sequence to its start (outputs stay
        aligned with the inputs); `Bidirectional` sets it per call.
      input_dropout: variational dropout rate on the inputs (one mask per
        sequence, ``(*B, I)``).
      recurrent_dropout: variational dropout rate on the state where it enters the
        recurrent product (one mask per sequence, ``(*B, K)``).
      time_major: default layout of ``xs`` and outputs, ``(T, *B, I)``.

    Parameters and carry are the cell's own: ``cell.init(key, I)`` and
    ``cell.initial_carry(B)``.
    """

    cell: Any
    reverse: bool = False
    input_dropout: float = 0.0
    recurrent_dropout: float = 0.0
    time_major: bool = False

    def __post_init__(self):
        _validate.check_cell(self.cell)
        for name in ("input_dropout", "recurrent_dropout"):
            rate = _validate.check_rate(getattr(self, name), name)
            object.__setattr__(self, name, rate)

    @property
    def output_size(self) -> int:
        """``Y``, the size of one output step."""
        return base.output_size(self.cell)

    @property
    def event_ndim(self) -> int:
        return base.event_ndim(self.cell)

    @property
    def has_dropout(self) -> bool:
        return bool(self.input_dropout or self.recurrent_dropout)

    def init(self, key, input_size: int):
        """The cell's parameters for inputs of size ``I``."""
        check_key(key, "key")
        return self.cell.init(key, input_size)

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        """The cell's zero carry for batch shape ``B``."""
        return self.cell.initial_carry(batch_shape, dtype)

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
        reverse: bool | None = None,
        time_major: bool | None = None,
        options: UnrollOptions | None = None,
    ):
        """Runs the layer over ``xs (*B, T, I)`` (``(T, *B, I)`` when time-major).

        Args:
          params: from `init`.
          xs: the inputs.
          carry: the initial carry (zeros when ``None``).
          seq_lengths, resets: as in [`rnnjax.unroll`][rnnjax.unroll].
          key: PRNG key for variational dropout; needed when ``training`` and a
            rate is set. ``split(key)`` gives the input and the recurrent mask's.
          training: apply dropout (off at evaluation).
          reverse, time_major: override the attributes.
          options: how the recurrence runs (`rnnjax.UnrollOptions`).

        Returns:
          ``(carry, ys)``: the carry at each sequence's last valid step and the
          outputs ``(*B, T, Y)``.
        """
        reverse = self.reverse if reverse is None else reverse
        time_major = self.time_major if time_major is None else time_major
        _, _, carry_shape = _validate.check_xs(xs, time_major, self.event_ndim)
        check_dropout_key(key, training, self.has_dropout, "layer")
        rec_mask = None
        if training and self.has_dropout:
            k_in, k_rec = jax.random.split(key)
            if self.input_dropout:
                mask = dropout_mask(
                    k_in, self.input_dropout, (*carry_shape, xs.shape[-1])
                )
                time_axis = 0 if time_major else len(carry_shape) - self.event_ndim + 1
                xs = xs * jnp.expand_dims(mask, time_axis).astype(xs.dtype)
            if self.recurrent_dropout:
                width = base.rec_width(self.cell, params)
                rec_mask = dropout_mask(
                    k_rec, self.recurrent_dropout, (*carry_shape, width)
                )
        return unroll_cell(
            self.cell,
            params,
            xs,
            carry=carry,
            seq_lengths=seq_lengths,
            reverse=reverse,
            time_major=time_major,
            resets=resets,
            rec_mask=rec_mask,
            options=check_options(options),
        )


@dataclasses.dataclass(frozen=True)
class Bidirectional:
    """Two `Layer` s over the same inputs, one forwards and one backwards,
    their outputs merged step by step (as Flax's ``nn.Bidirectional``).

    Attributes:
      forward: the layer run forwards (its ``reverse`` is ignored).
      backward: the layer run backwards (its ``reverse`` is ignored).
      merge: ``merge(y_forward, y_backward) -> y`` on ``(..., Y)`` outputs;
        `concatenate` (``2Y`` features) by default, e.g. ``jnp.add`` to sum.
      time_major: default layout of ``xs`` and outputs.

    Parameters and carries are pairs: ``(forward, backward)``.
    """

    forward: Layer
    backward: Layer
    merge: Callable = concatenate
    time_major: bool = False

    def __post_init__(self):
        for name in ("forward", "backward"):
            if not isinstance(getattr(self, name), Layer):
                raise TypeError(
                    f"{name}: expected an rnnjax.Layer, got "
                    f"{type(getattr(self, name)).__name__}"
                )
        if not callable(self.merge):
            raise TypeError(f"merge: expected a callable, got {self.merge!r}")
        if self.forward.event_ndim != self.backward.event_ndim:
            raise ValueError(
                "backward: expected a cell whose step input has "
                f"{self.forward.event_ndim} axis(es) like forward's, got "
                f"{self.backward.event_ndim}"
            )

    @property
    def output_size(self) -> int:
        """The merged output's size (``2Y`` for `concatenate`)."""
        a = jax.ShapeDtypeStruct((self.forward.output_size,), jnp.float32)
        b = jax.ShapeDtypeStruct((self.backward.output_size,), jnp.float32)
        return jax.eval_shape(self.merge, a, b).shape[-1]

    @property
    def event_ndim(self) -> int:
        return self.forward.event_ndim

    @property
    def has_dropout(self) -> bool:
        return self.forward.has_dropout or self.backward.has_dropout

    def init(self, key, input_size: int):
        """``(forward, backward)`` parameters, from ``split(key)``."""
        check_key(key, "key")
        k_fwd, k_bwd = jax.random.split(key)
        return self.forward.init(k_fwd, input_size), self.backward.init(
            k_bwd, input_size
        )

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        """Zero carries ``(forward, backward)``."""
        return (
            self.forward.initial_carry(batch_shape, dtype),
            self.backward.initial_carry(batch_shape, dtype),
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
        """Runs both directions over ``xs (*B, T, I)`` and merges their outputs.

        Args as [`Layer.apply`][rnnjax.Layer.apply]; ``params`` and ``carry`` are
        ``(forward, backward)`` pairs, and direction ``d`` draws its dropout masks
        from ``fold_in(key, d)``.

        Returns:
          ``((carry_forward, carry_backward), merge(ys_forward, ys_backward))``.
        """
        time_major = self.time_major if time_major is None else time_major
        check_dropout_key(key, training, self.has_dropout, "layer")
        if carry is not None and not (
            isinstance(carry, tuple | list) and len(carry) == 2
        ):
            raise ValueError(
                "carry: expected a (forward, backward) pair of carries (see "
                f"initial_carry), got {type(carry).__name__} of length {_len(carry)}"
            )
        if not (isinstance(params, tuple | list) and len(params) == 2):
            raise ValueError(
                "params: expected a (forward, backward) pair of cell parameters "
                f"(see init), got {type(params).__name__} of length {_len(params)}"
            )
        options = check_options(options)
        finals, outputs = [], []
        for d, layer in enumerate((self.forward, self.backward)):
            drop = training and layer.has_dropout
            final, ys = layer.apply(
                params[d],
                xs,
                carry=None if carry is None else carry[d],
                seq_lengths=seq_lengths,
                resets=resets,
                key=jax.random.fold_in(key, d) if drop else None,
                training=drop,
                reverse=d == 1,
                time_major=time_major,
                options=options,
            )
            finals.append(final)
            outputs.append(ys)
        return tuple(finals), self.merge(*outputs)


def _len(x):
    return len(x) if hasattr(x, "__len__") else "n/a"


def check_options(options) -> UnrollOptions:
    """``options``, or the default `UnrollOptions` for ``None``."""
    if options is None:
        return UnrollOptions()
    if not isinstance(options, UnrollOptions):
        raise TypeError(
            f"options: expected an rnnjax.UnrollOptions, got {type(options).__name__}"
        )
    return options


def check_dropout_key(key, training: bool, has_dropout: bool, what: str) -> None:
    """``key`` must be a PRNG key when ``training`` with dropout, and ``None`` when
    ``what`` (``"layer"``, ``"stack"``) has no dropout."""
    if key is not None:
        if not has_dropout:
            raise TypeError(
                f"key: this {what} has no dropout, so expected key=None; got a key"
            )
        check_key(key, "key")
    elif training and has_dropout:
        raise TypeError("key: training=True with dropout needs a PRNG key; got None")


def dropout_mask(key, rate, shape):
    """Inverted-dropout mask: 0 with probability ``rate``, else ``1 / (1 - rate)``."""
    keep = jax.random.bernoulli(key, 1.0 - rate, shape)
    return keep.astype(jnp.float32) / (1.0 - rate)

"""Argument checks shared by ``unroll`` and the layers; all run at trace time."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax.cells.base import Cell


def check_cell(cell, argname: str = "cell") -> None:
    if not isinstance(cell, Cell):
        raise TypeError(
            f"{argname}: expected an rnnjax cell (e.g. rnnjax.lstm(H)), got "
            f"{type(cell).__name__}"
        )


def check_not_foreign(x, argname: str) -> None:
    """Raises TypeError naming ``argname`` for another framework's tensor (PyTorch,
    TensorFlow, ...): anything with a ``shape`` and a ``dtype`` that is neither a
    JAX nor a NumPy array.

    Not converted: ``jax.jit`` refuses such tensors as arguments, so a silent
    conversion here would make code that runs eagerly fail under ``jit``; it
    would also copy the tensor off its device on every call and drop its
    autograd graph without a word.
    """
    if isinstance(x, jax.Array | np.ndarray | np.generic | jax.ShapeDtypeStruct):
        return
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        cls = type(x)
        hint = ""
        if cls.__module__.split(".")[0] == "torch":
            hint = " (convert it first: jnp.asarray(t.detach().cpu().numpy()))"
        raise TypeError(
            f"{argname}: expected a JAX or NumPy array, got "
            f"{cls.__module__}.{cls.__qualname__}{hint}"
        )


def check_xs(xs, time_major: bool, event_ndim: int = 1):
    """Returns ``(T, batch_shape, carry_batch_shape)`` of ``xs``.

    ``xs`` is ``(*B, T, *E)`` or, time-major, ``(T, *B, *E)``, where ``E`` are the
    ``event_ndim`` axes of one step's input (features last; a convolutional cell has
    spatial axes before them). The carry's leading shape is ``(*B, *E[:-1])``.
    """
    check_not_foreign(xs, "xs")
    if not hasattr(xs, "shape") or not hasattr(xs, "dtype"):
        raise TypeError(f"xs: expected an array, got {type(xs).__name__}")
    event = "I" if event_ndim == 1 else "*S, C"
    if xs.ndim < event_ndim + 1:
        layout = f"(T, *B, {event})" if time_major else f"(*B, T, {event})"
        raise ValueError(
            f"xs: expected rank >= {event_ndim + 1} {layout}, got shape {xs.shape}"
        )
    if not jnp.issubdtype(xs.dtype, jnp.floating):
        raise TypeError(f"xs: expected a floating dtype, got {xs.dtype}")
    first_event_axis = xs.ndim - event_ndim
    spatial = tuple(xs.shape[first_event_axis:-1])
    if time_major:
        batch = tuple(xs.shape[1:first_event_axis])
        return xs.shape[0], batch, batch + spatial
    batch = tuple(xs.shape[: first_event_axis - 1])
    return xs.shape[first_event_axis - 1], batch, batch + spatial


def check_carry(carry, expected, argname: str = "carry") -> None:
    """``carry`` must have ``expected``'s tree structure and leaf shapes."""
    got_struct, exp_struct = jax.tree.structure(carry), jax.tree.structure(expected)
    shapes = lambda t: [tuple(jnp.shape(x)) for x in jax.tree.leaves(t)]
    if got_struct != exp_struct or shapes(carry) != shapes(expected):
        raise ValueError(
            f"{argname}: expected {_tree_shapes(expected)}, got {_tree_shapes(carry)}"
        )


def _tree_shapes(tree) -> str:
    return str(jax.tree.map(lambda x: tuple(jnp.shape(x)), tree))


def check_lengths_arg(seq_lengths, batch_shape, num_steps):
    """Validates ``seq_lengths (*B,)`` (integers) and clips it to ``[0, T]``."""
    if seq_lengths is None:
        return None
    check_not_foreign(seq_lengths, "seq_lengths")
    if not hasattr(seq_lengths, "dtype"):
        seq_lengths = jnp.asarray(seq_lengths)
    if not jnp.issubdtype(seq_lengths.dtype, jnp.integer):
        raise TypeError(
            f"seq_lengths: expected an integer dtype, got {seq_lengths.dtype}"
        )
    if tuple(seq_lengths.shape) != tuple(batch_shape):
        raise ValueError(
            f"seq_lengths: expected shape {tuple(batch_shape)} (the batch shape of "
            f"xs), got {tuple(seq_lengths.shape)}"
        )
    return jnp.clip(jnp.asarray(seq_lengths, jnp.int32), 0, num_steps)


def check_resets(resets, batch_shape, num_steps, time_major: bool):
    """Validates boolean ``resets`` laid out like ``xs`` without features; returns
    it time-major ``(T, *B)``."""
    if resets is None:
        return None
    check_not_foreign(resets, "resets")
    if not hasattr(resets, "dtype"):
        resets = jnp.asarray(resets)
    if resets.dtype != jnp.bool_:
        raise TypeError(f"resets: expected a bool array, got {resets.dtype}")
    expected = (num_steps, *batch_shape) if time_major else (*batch_shape, num_steps)
    if tuple(resets.shape) != expected:
        raise ValueError(
            f"resets: expected shape {expected}, got {tuple(resets.shape)}"
        )
    return resets if time_major else jnp.moveaxis(resets, -1, 0)


def check_rate(rate, argname: str) -> float:
    if not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ValueError(f"{argname}: expected a float in [0, 1), got {rate!r}")
    return float(rate)

"""Truncated backpropagation through time (Williams & Peng 1990; Sutskever 2013).

A long batch is cut along time into chunks of ``chunk_size`` steps. Each chunk gets
one forward pass, one gradient and one optimizer update; the recurrent state is
carried from chunk to chunk (and from call to call) through ``lax.stop_gradient``,
so gradients never flow back past a chunk boundary.

Carry contract:

- ``apply_fn(params, xs, carry, key) -> (carry, outputs)``: the model on one chunk.
  ``xs`` is the chunk of the batch (the same pytree as the batch, every leaf cut to
  ``chunk_size`` steps along ``time_axis``); ``carry`` is the recurrent state at
  the chunk's first step, and the returned carry the state after its last step
  (for `rnnjax.Stack`, ``model.apply(params, inputs, carry=carry)`` returns
  exactly that).
- ``loss_fn(outputs, xs) -> loss`` or ``(loss, count)``, on the same chunk.
- The first carry is the caller's (``model.initial_carry((B,))`` for a fresh
  stream); the step returns the carry after the batch's last chunk, to pass to the
  next call when batches are consecutive pieces of the same streams.
- Chunk ``i`` gets the key ``jax.random.fold_in(key, i)`` (``None`` when ``key`` is
  ``None``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax.train import _update

__all__ = ["make_tbptt_step"]


def _chunks(batch, chunk_size, time_axis):
    """Cuts every leaf ``(..., T, ...)`` into ``(T // C, ..., C, ...)``."""
    leaves = jax.tree.leaves(batch)
    if not leaves:
        raise ValueError("batch: expected at least one array, got none")
    num_steps = leaves[0].shape[time_axis]
    for leaf in leaves:
        if leaf.shape[time_axis] != num_steps:
            raise ValueError(
                f"batch: expected every leaf to have {num_steps} steps on axis "
                f"{time_axis}, got shape {leaf.shape}"
            )
    if num_steps % chunk_size:
        raise ValueError(
            f"batch: expected a number of steps divisible by chunk_size={chunk_size}, "
            f"got {num_steps}"
        )
    num_chunks = num_steps // chunk_size

    def cut(x):
        axis = time_axis % x.ndim
        shape = (*x.shape[:axis], num_chunks, chunk_size, *x.shape[axis + 1 :])
        return jnp.moveaxis(x.reshape(shape), axis, 0)

    return jax.tree.map(cut, batch), num_chunks


def make_tbptt_step(
    apply_fn,
    loss_fn,
    optimizer,
    *,
    chunk_size: int,
    clip_norm: float | None = 1.0,
    time_axis: int = 1,
):
    """Builds a jitted ``(state, batch, carry, key) -> (state, carry, metrics)``.

    Args:
      apply_fn: see the module docstring (the carry contract).
      loss_fn: as ``apply_fn``.
      optimizer: an ``optax.GradientTransformation``; the state comes from
        [`rnnjax.train.init_state`][rnnjax.train.init_state].
      chunk_size: ``C``, the truncation length; the batch's ``T`` must be a multiple.
      clip_norm: global-norm gradient clipping per chunk, ``None`` for none.
      time_axis: the time axis of every batch leaf (1 for ``(B, T, ...)``).

    Each chunk is one step of `rnnjax.train.make_train_step`: clipped, and
    skipped when its loss or gradient is not finite (a skipped chunk also leaves the
    carry as it was before the chunk). ``metrics`` holds one entry per chunk:
    ``loss``, ``grad_norm``, ``skipped`` and ``count``, each of shape ``(T // C,)``.
    """
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size: expected a positive int, got {chunk_size!r}")
    tx, chained = _update.clipped(optimizer, clip_norm)

    def objective(params, xs, carry, key):
        carry, outputs = apply_fn(params, xs, carry, key)
        loss, count = _update.split_loss(loss_fn(outputs, xs))
        return loss, (count, carry)

    grad_fn = jax.value_and_grad(objective, has_aux=True)

    @jax.jit
    def tbptt_step(state, batch, carry, key):
        chunks, num_chunks = _chunks(batch, chunk_size, time_axis)

        def chunk_step(loop, inputs):
            state, carry = loop
            index, xs = inputs
            carry = lax.stop_gradient(carry)
            chunk_key = None if key is None else jax.random.fold_in(key, index)
            (loss, (count, new_carry)), grads = grad_fn(
                state.params, xs, carry, chunk_key
            )
            state, metrics = _update.guarded_update(tx, chained, state, loss, grads)
            keep = jnp.logical_not(metrics["skipped"])
            carry = jax.tree.map(lambda n, o: jnp.where(keep, n, o), new_carry, carry)
            return (state, carry), {**metrics, "count": count}

        (state, carry), metrics = lax.scan(
            chunk_step, (state, carry), (jnp.arange(num_chunks), chunks)
        )
        return state, lax.stop_gradient(carry), metrics

    return tbptt_step

"""The update shared by `rnnjax.train.make_train_step` and
`rnnjax.train.make_tbptt_step`: optional global-norm clipping in front of
the optimizer, a step skipped when its loss or gradient is not finite, and the
``loss_fn`` result read as ``(loss, count)``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

__all__ = ["clipped", "guarded_update", "split_loss"]


def split_loss(result):
    """``loss`` or ``(loss, count)`` -> ``(loss, count)``; count ``-1`` if absent."""
    if isinstance(result, tuple):
        if len(result) != 2:
            raise ValueError(
                f"loss_fn: expected a scalar or (loss, count), got a tuple of "
                f"{len(result)}"
            )
        loss, count = result
    else:
        loss, count = result, jnp.asarray(-1, jnp.int32)
    loss = jnp.asarray(loss)
    if loss.shape != ():
        raise ValueError(f"loss_fn: expected a scalar loss, got shape {loss.shape}")
    return loss, jnp.asarray(count)


def clipped(optimizer, clip_norm):
    """``(tx, chained)``: ``optimizer`` behind ``optax.clip_by_global_norm`` (then
    ``chained`` is true), or ``optimizer`` itself when ``clip_norm`` is ``None``."""
    if clip_norm is None:
        return optimizer, False
    if not clip_norm > 0:
        raise ValueError(
            f"clip_norm: expected a positive float or None, got {clip_norm!r}"
        )
    return optax.chain(optax.clip_by_global_norm(clip_norm), optimizer), True


def guarded_update(tx, chained, state, loss, grads):
    """One guarded update of a [`TrainState`][rnnjax.train.TrainState]: returns
    ``(state, metrics)``; a non-finite loss or gradient leaves ``params`` and
    ``opt_state`` bit-for-bit unchanged. ``state.opt_state`` is the optimizer's
    own (the stateless clipping's empty state is added and dropped here)."""
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss)
    for g in jax.tree.leaves(grads):
        finite = finite & jnp.all(jnp.isfinite(g))
    opt_state = (optax.EmptyState(), state.opt_state) if chained else state.opt_state
    updates, new_opt_state = tx.update(grads, opt_state, state.params)
    new_opt_state = new_opt_state[1] if chained else new_opt_state
    new_params = optax.apply_updates(state.params, updates)

    def keep(new, old):
        return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)

    skip = jnp.logical_not(finite)
    state = type(state)(
        step=state.step + 1,
        params=keep(new_params, state.params),
        opt_state=keep(new_opt_state, state.opt_state),
        skipped=state.skipped + skip.astype(jnp.int32),
    )
    return state, {"loss": loss, "grad_norm": grad_norm, "skipped": skip}

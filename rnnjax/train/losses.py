"""Masked losses for sequence models.

Every loss takes a ``mask`` (``1``/``True`` where an element is scored, ``None`` to
score everything) and returns ``(loss, count)``: the mean over the scored elements
and how many there were. A batch with nothing scored gives a loss of exactly ``0``
(finite, with zero gradient) and a count of ``0``, so callers can weight means over
batches by ``count``. Shapes use the package legend: ``B`` batch, ``T`` time, ``V``
vocabulary (classes), ``Y`` output features.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "accuracy",
    "bernoulli_nll",
    "last_step_mse",
    "lengths_mask",
    "masked_mean",
    "mse",
    "softmax_cross_entropy",
]


def lengths_mask(seq_lengths, num_steps: int):
    """Boolean mask ``(B, T)``: ``True`` on each sequence's valid prefix."""
    steps = jnp.arange(num_steps)
    return steps[None, :] < jnp.asarray(seq_lengths)[..., None]


def masked_mean(values, mask=None):
    """``(mean of values where mask, count)``; ``values`` and ``mask`` share a shape.

    The mean is ``0`` when nothing is scored (the denominator is clamped to one, and
    unscored values, even non-finite ones, are replaced by zero before summing).
    """
    values = jnp.asarray(values)
    if mask is None:
        mask = jnp.ones(values.shape, bool)
    mask = jnp.asarray(mask)
    _check("mask", mask, values.shape)
    scored = mask.astype(bool)
    total = jnp.sum(jnp.where(scored, values, 0), dtype=jnp.float32)
    count = jnp.sum(scored, dtype=jnp.int32)
    return total / jnp.maximum(count, 1).astype(jnp.float32), count


def _check(name, x, shape):
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {x.shape}")


def _step_mask(mask, shape):
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    _check("mask", mask, shape)
    return mask


def softmax_cross_entropy(logits, targets, mask=None):
    """Sequence cross-entropy over integer targets, from log-softmax.

    Args:
      logits: ``(B, T, V)`` unnormalised scores.
      targets: ``(B, T)`` integer classes in ``[0, V)``.
      mask: ``(B, T)``, scored steps.

    Returns:
      ``(mean negative log-likelihood per scored step, number of scored steps)``.
    """
    logits, targets = jnp.asarray(logits), jnp.asarray(targets)
    _check("targets", targets, logits.shape[:-1])
    mask = _step_mask(mask, targets.shape)
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    picked = jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    return masked_mean(-picked, mask)


def accuracy(logits, targets, mask=None):
    """Fraction of scored steps whose ``argmax`` over ``(B, T, V)`` logits equals the
    ``(B, T)`` integer targets; returns ``(accuracy, count)``."""
    logits, targets = jnp.asarray(logits), jnp.asarray(targets)
    _check("targets", targets, logits.shape[:-1])
    mask = _step_mask(mask, targets.shape)
    hits = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
    return masked_mean(hits, mask)


def mse(preds, targets, mask=None):
    """Per-step regression loss: squared error averaged over the ``Y`` features of a
    step, then over the scored steps.

    Args:
      preds: ``(B, T, Y)``.
      targets: as ``preds``.
      mask: ``(B, T)``, scored steps.

    Returns:
      ``(mean squared error, number of scored steps)``.
    """
    preds, targets = jnp.asarray(preds), jnp.asarray(targets)
    _check("targets", targets, preds.shape)
    mask = _step_mask(mask, preds.shape[:-1])
    err = jnp.mean(jnp.square(preds.astype(jnp.float32) - targets), axis=-1)
    return masked_mean(err, mask)


def last_step_mse(preds, targets, mask=None):
    """Regression on each sequence's last valid step.

    Args:
      preds: ``(B, T, Y)`` per-step predictions.
      targets: ``(B, Y)``, one target per sequence.
      mask: ``(B, T)`` valid steps, a right-padded prefix (as from
        `lengths_mask`); the last valid step of a row is ``sum(mask) - 1``. A
        row with no valid step is not scored. ``None``: every row ends at ``T - 1``.

    Returns:
      ``(mean squared error over Y and the scored sequences, number of sequences)``.
    """
    preds, targets = jnp.asarray(preds), jnp.asarray(targets)
    _check("targets", targets, preds.shape[:1] + preds.shape[2:])
    num_steps = preds.shape[1]
    if mask is None:
        lengths = jnp.full(preds.shape[:1], num_steps, jnp.int32)
    else:
        mask = _step_mask(mask, preds.shape[:2])
        lengths = jnp.sum(mask.astype(bool), axis=1, dtype=jnp.int32)
    last = jnp.clip(lengths - 1, 0, num_steps - 1)
    picked = jnp.take_along_axis(preds, last[:, None, None], axis=1)[:, 0]
    err = jnp.mean(jnp.square(picked.astype(jnp.float32) - targets), axis=-1)
    return masked_mean(err, lengths > 0)


def bernoulli_nll(logits, targets, mask=None):
    """Negative log-likelihood of binary frames (piano rolls) under independent
    Bernoullis given by logits: summed over the notes of a frame (88 for a piano),
    averaged over scored steps. This is the per-time-step NLL reported by
    Boulanger-Lewandowski et al. (2012). Uses the stable form
    ``softplus(l) - y * l`` (``= -y log sigmoid(l) - (1 - y) log sigmoid(-l)``).

    Args:
      logits: ``(B, T, X)``.
      targets: ``(B, T, X)`` in ``{0, 1}`` (or probabilities).
      mask: ``(B, T)``, scored steps.

    Returns:
      ``(mean NLL per scored step in nats, number of scored steps)``.
    """
    logits, targets = jnp.asarray(logits), jnp.asarray(targets)
    _check("targets", targets, logits.shape)
    mask = _step_mask(mask, logits.shape[:-1])
    logits = logits.astype(jnp.float32)
    per_note = jax.nn.softplus(logits) - targets * logits
    return masked_mean(jnp.sum(per_note, axis=-1), mask)

"""Running a recurrence over a time-major sequence one chunk of steps at a time.

Shared by ``remat="chunk"`` (each chunk under ``jax.checkpoint``) and the fused
kernel's forward, which projects the inputs chunk by chunk on the CPU
(``fused.projected_recurrence``).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax


def over_chunks(chunk_fn, carry0, xs, valid, resets, size, event_ndim):
    """``lax.scan`` of ``chunk_fn`` over chunks of ``size`` steps.

    Args:
      chunk_fn: ``(carry, (x (C, *B, ...), v, r)) -> (carry, ys (C, *B, Y))``.
      carry0: the carry before the first step.
      xs: time-major inputs ``(T, *B, ...)`` with ``event_ndim`` event axes.
      valid: ``(T, *B)`` booleans or ``None``.
      resets: as ``valid``.
      size: ``C``, steps per chunk (``1 <= C``; at most ``T`` is used).

    Steps added to make ``T`` a multiple of ``C`` are marked invalid, so they leave
    the carry unchanged, and their outputs are cut off.

    Returns:
      ``(carry_T, ys (T, *B, Y))``.
    """
    num_steps = xs.shape[0]
    size = min(size, max(num_steps, 1))
    num_chunks = -(-num_steps // size)
    pad = num_chunks * size - num_steps
    if pad:
        if valid is None:
            valid = jnp.ones(xs.shape[: xs.ndim - event_ndim], bool)
        valid, xs = _pad_time(valid, pad), _pad_time(xs, pad)
        resets = None if resets is None else _pad_time(resets, pad)

    def split(a):
        return None if a is None else a.reshape(num_chunks, size, *a.shape[1:])

    carry, ys = lax.scan(chunk_fn, carry0, (split(xs), split(valid), split(resets)))
    ys = ys.reshape(num_chunks * size, *ys.shape[2:])
    return carry, ys[:num_steps] if pad else ys


def _pad_time(a, pad):
    """Appends ``pad`` zero (or false) steps to ``a (T, ...)``."""
    return jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))

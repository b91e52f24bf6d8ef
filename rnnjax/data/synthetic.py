"""Synthetic long-time-lag tasks: Hochreiter & Schmidhuber (1997), copy and parity.

Every task is a function ``task(key_or_rng, batch_size, length, ...) -> Batch`` that
draws a batch with NumPy (host side; the arrays go straight into JAX). Randomness is
explicit: ``key_or_rng`` is an ``int`` seed, a ``numpy.random.Generator`` (used as is,
its state advances) or a JAX PRNG key (its key data seeds a NumPy generator). The same
seed or key always gives the same batch.

Layout, one for all tasks (legend: ``B`` batch, ``T`` time, ``I`` input features):

- ``inputs``: ``(B, T, I)`` float32. Steps past a sequence's end (tasks with random
  lengths) are all zero.
- ``targets``: aligned with the inputs step for step. Regression tasks (adding,
  multiplication): ``(B, T, 1)`` float32. Classification tasks (temporal order, long
  time lag, copy, parity): ``(B, T)`` int32 class ids. Unscored steps hold 0 (the copy
  task: the blank symbol).
- ``mask``: ``(B, T)`` float32, 1 at the steps that are scored, 0 elsewhere. For the
  tasks scored only at the sequence end it is 1 at exactly one step per row, the last
  valid one; ``Batch.seq_lengths()`` recovers the lengths for ``unroll``.

Paper: S. Hochreiter and J. Schmidhuber, "Long Short-Term Memory", Neural Computation
9(8), 1997, Section 5 (Experiments 2a, 4, 5, 6a, 6b).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from rnnjax.data._rng import as_generator, check_int

ADDING_TOLERANCE = 0.04
"""The adding and multiplication problems count a sequence as processed correctly
when the absolute error at its end is below this (the paper's criterion)."""
TEMPORAL_ORDER_TOLERANCE = 0.3
"""Temporal order: the paper's criterion is a final absolute error below this for
all output units (with one-hot targets)."""
TEMPORAL_ORDER_SYMBOLS = ("a", "b", "c", "d", "B", "E", "X", "Y")
"""Temporal order input symbols, in the order of the one-hot input units."""
TEMPORAL_ORDER_CLASSES = {
    2: ("Q", "R", "S", "U"),
    3: ("Q", "R", "S", "U", "V", "A", "B", "C"),
}
"""Temporal order class names by number of relevant symbols; the class id is the
position in this tuple (X reads as bit 0, Y as bit 1, first occurrence most
significant: X,X -> Q = 0, X,Y -> R = 1, Y,X -> S = 2, Y,Y -> U = 3)."""


class Batch(NamedTuple):
    """One batch of a synthetic task: ``(inputs, targets, mask)``.

    ``inputs`` is ``(B, T, I)`` float32 (or ``(B, T)`` int32 token ids: `mqar`, the
    text tasks), ``targets`` is ``(B, T, 1)`` float32 (regression) or ``(B, T)``
    int32 (class ids), ``mask`` is ``(B, T)`` float32 with 1 at the scored steps.
    """

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray

    def seq_lengths(self):
        """``(B,)`` int32: one past the last scored step of each row (the valid length
        for the tasks with random lengths, whose padding comes after it). NumPy for
        NumPy batches, ``jax.numpy`` otherwise (so it also works inside ``jit``)."""
        xp = np if isinstance(self.mask, np.ndarray) else jnp
        t = self.mask.shape[1]
        scored = self.mask > 0
        last = t - 1 - xp.argmax(scored[:, ::-1], axis=1)
        return xp.where(scored.any(axis=1), last + 1, 0).astype(np.int32)


def _lengths(rng, batch_size, length, variable_length):
    """Per-row lengths in ``[length, length + length // 10]`` (the paper's ``T`` to
    ``T + T/10``) and the padded time size."""
    if not variable_length:
        return np.full(batch_size, length, np.int64), length
    t_max = length + length // 10
    return rng.integers(length, t_max + 1, size=batch_size), t_max


def _last_step_mask(lengths, t):
    mask = np.zeros((lengths.shape[0], t), np.float32)
    mask[np.arange(lengths.shape[0]), lengths - 1] = 1.0
    return mask


def _marked_pairs(key_or_rng, batch_size, length, variable_length, low, first_value):
    """Shared generator of Experiments 4 and 5: values, markers, X1, X2, lengths."""
    rng = as_generator(key_or_rng)
    batch_size = check_int(batch_size, "batch_size", 1)
    length = check_int(
        length, "length", 11, "(X1 lies in the first ten steps, before the final pair)"
    )
    b = np.arange(batch_size)
    lengths, t = _lengths(rng, batch_size, length, variable_length)
    valid = np.arange(t)[None, :] < lengths[:, None]
    values = np.where(valid, rng.uniform(low, 1.0, size=(batch_size, t)), 0.0)
    # X1: one of the first ten pairs. X2: one of the first length//2 - 1 pairs that
    # are still unmarked, i.e. the r-th unmarked pair with r uniform in that window
    # (skipping X1's position shifts the window by one when X1 lies inside it).
    p1 = rng.integers(0, 10, size=batch_size)
    window = length // 2 - 1
    r = rng.integers(0, window, size=batch_size)
    p2 = r + (r >= p1)
    markers = np.zeros((batch_size, t))
    markers[:, 0] = -1.0
    markers[b, lengths - 1] = -1.0
    markers[b, p1] = 1.0
    markers[b, p2] = 1.0
    values[:, 0] = np.where(markers[:, 0] == 1.0, first_value, values[:, 0])
    inputs = np.stack([values, markers], axis=-1).astype(np.float32)
    x1 = inputs[b, p1, 0].astype(np.float64)
    x2 = inputs[b, p2, 0].astype(np.float64)
    return inputs, x1, x2, lengths, t


def _scalar_targets(values, lengths, t):
    targets = np.zeros((lengths.shape[0], t, 1), np.float32)
    targets[np.arange(lengths.shape[0]), lengths - 1, 0] = values
    return targets


def adding(key_or_rng, batch_size: int, length: int, *, variable_length=True) -> Batch:
    """The adding problem (Hochreiter & Schmidhuber 1997, Experiment 4).

    Each step is a pair ``(value, marker)``: ``inputs[..., 0]`` is a value drawn
    uniformly from ``[-1, 1]``, ``inputs[..., 1]`` a marker in ``{-1, 0, 1}``. Exactly
    two pairs are marked 1, chosen uniformly: first one of the first ten pairs (its
    value is ``X1``), then one of the first ``length // 2 - 1`` still unmarked pairs
    (``X2``; so when ``X1`` lies inside that window, ``X2`` ranges over the first
    ``length // 2`` pairs other than ``X1``'s). The first and the final pair are
    marked -1 (unless the first pair is one of the two marked 1); all other markers
    are 0. In the rare case where the first pair is marked 1 its value is set to 0
    (the paper: "we set X1 to zero"; here for either marked value on the first pair).

    ``length`` is the paper's minimal sequence length ``T`` (100, 500 and 1000 in the
    paper; at least 11 here). With ``variable_length`` (the paper's setting) each
    sequence has a length drawn uniformly from ``[T, T + T // 10]`` and the batch is
    right-padded with zero steps to ``T + T // 10``; otherwise every sequence has
    length ``T``.

    The only error signal is at the sequence end: ``targets`` is ``(B, T, 1)`` and
    holds ``0.5 + (X1 + X2) / 4`` (the sum scaled to ``[0, 1]``) at the last valid
    step, where ``mask`` is 1. A sequence counts as processed correctly if the
    absolute error there is below ``ADDING_TOLERANCE`` (0.04).
    """
    inputs, x1, x2, lengths, t = _marked_pairs(
        key_or_rng, batch_size, length, variable_length, -1.0, 0.0
    )
    targets = _scalar_targets(0.5 + (x1 + x2) / 4.0, lengths, t)
    return Batch(inputs, targets, _last_step_mask(lengths, t))


def multiplication(
    key_or_rng, batch_size: int, length: int, *, variable_length=True
) -> Batch:
    """The multiplication problem (Hochreiter & Schmidhuber 1997, Experiment 5).

    As `adding`, except that values are drawn uniformly from ``[0, 1]``, a
    marked first pair has its value set to 1 (not 0), and the target at the sequence
    end is the product ``X1 * X2``. The paper uses ``T = 100`` and the same success
    criterion (absolute error below ``ADDING_TOLERANCE``, 0.04).
    """
    inputs, x1, x2, lengths, t = _marked_pairs(
        key_or_rng, batch_size, length, variable_length, 0.0, 1.0
    )
    targets = _scalar_targets(x1 * x2, lengths, t)
    return Batch(inputs, targets, _last_step_mask(lengths, t))


def _one_hot(ids, n, valid=None):
    out = np.eye(n, dtype=np.float32)[ids]
    if valid is not None:
        out *= valid[..., None]
    return out


def temporal_order(
    key_or_rng,
    batch_size: int,
    length: int,
    *,
    num_relevant: int = 2,
    variable_length=True,
) -> Batch:
    """The temporal order problem (Hochreiter & Schmidhuber 1997, Experiments 6a, 6b).

    Sequences over the eight symbols ``a, b, c, d, B, E, X, Y``, one-hot in that order
    (``TEMPORAL_ORDER_SYMBOLS``; ``I = 8``). A sequence starts with ``E``, ends with
    the trigger symbol ``B`` and is otherwise made of symbols drawn uniformly from
    ``{a, b, c, d}``, except at ``num_relevant`` positions that hold ``X`` or ``Y``
    (each with probability 1/2).

    Positions, 1-based as in the paper, for ``length = 100`` (the paper's setting,
    lengths drawn from ``[100, 110]``): with ``num_relevant=2`` (6a), ``t1`` in
    ``[10, 20]`` and ``t2`` in ``[50, 60]``; with ``num_relevant=3`` (6b), ``t1`` in
    ``[10, 20]``, ``t2`` in ``[33, 43]``, ``t3`` in ``[66, 76]``, all uniform. Other
    lengths scale the windows: ``[L//10, L//5]``, ``[L//2, 6L//10]``, and for 6b
    ``[33L//100, 43L//100]``, ``[66L//100, 76L//100]`` (``length >= 20``).

    The class is the order of the X/Y occurrences, 4 classes for 6a (``X,X -> Q``,
    ``X,Y -> R``, ``Y,X -> S``, ``Y,Y -> U``) and 8 for 6b (``X,X,X -> Q``,
    ``X,X,Y -> R``, ``X,Y,X -> S``, ``X,Y,Y -> U``, ``Y,X,X -> V``, ``Y,X,Y -> A``,
    ``Y,Y,X -> B``, ``Y,Y,Y -> C``): the class id is the X/Y pattern read as a
    binary number (X = 0, Y = 1, first occurrence most significant), an index into
    ``TEMPORAL_ORDER_CLASSES[num_relevant]``. ``targets`` is ``(B, T)`` int32 with the
    class id at the last valid step, where ``mask`` is 1: the paper gives the error
    signal only at the sequence end and counts a sequence as correct when every output
    unit's absolute error there is below 0.3 (one-hot targets).
    """
    rng = as_generator(key_or_rng)
    batch_size = check_int(batch_size, "batch_size", 1)
    length = check_int(length, "length", 20, "(the X/Y windows scale with it)")
    if num_relevant not in TEMPORAL_ORDER_CLASSES:
        raise ValueError(f"num_relevant: expected 2 or 3, got {num_relevant!r}")
    b = np.arange(batch_size)
    lengths, t = _lengths(rng, batch_size, length, variable_length)
    symbols = rng.integers(0, 4, size=(batch_size, t))
    symbols[:, 0] = 5  # E
    symbols[b, lengths - 1] = 4  # B, the trigger
    L = length
    if num_relevant == 2:
        windows = [(L // 10, L // 5), (L // 2, 6 * L // 10)]
    else:
        windows = [
            (L // 10, L // 5),
            (33 * L // 100, 43 * L // 100),
            (66 * L // 100, 76 * L // 100),
        ]
    labels = np.zeros(batch_size, np.int64)
    for lo, hi in windows:
        pos = rng.integers(lo, hi + 1, size=batch_size) - 1  # 1-based -> 0-based
        is_y = rng.integers(0, 2, size=batch_size)
        symbols[b, pos] = 6 + is_y
        labels = 2 * labels + is_y
    valid = np.arange(t)[None, :] < lengths[:, None]
    inputs = _one_hot(symbols, 8, valid)
    targets = np.zeros((batch_size, t), np.int32)
    targets[b, lengths - 1] = labels
    return Batch(inputs, targets, _last_step_mask(lengths, t))


def long_time_lag(key_or_rng, batch_size: int, length: int) -> Batch:
    """Noise-free sequences with long time lags (Hochreiter & Schmidhuber 1997,
    Experiment 2a).

    With ``p = length`` there are ``p + 1`` symbols ``a_1 .. a_{p-1}, x = a_p,
    y = a_{p+1}``, one-hot as input units ``0 .. p`` in that order (``I = p + 1``).
    Each sequence is, with probability 1/2 each, ``(y, a_1, ..., a_{p-1}, y)`` or
    ``(x, a_1, ..., a_{p-1}, x)``: ``p + 1`` symbols, and predicting the last needs
    the first, stored for ``p`` steps.

    The net predicts the next symbol at every step, so the batch holds the first ``p``
    symbols as ``inputs`` (``T = p``) and the next symbol at each step as ``targets``,
    ``(B, T)`` int32 class ids in ``[0, p]``; ``mask`` is all ones (the paper's error
    signal is at every step). Only the last step, ``targets[:, -1]``, is not
    predictable from the step before; the paper's measure of success is the
    prediction of that final element. ``length >= 2`` (the paper's runs use p = 4,
    10 and 100).
    """
    rng = as_generator(key_or_rng)
    batch_size = check_int(batch_size, "batch_size", 1)
    p = check_int(length, "length", 2, "(p, so that a_1 exists)")
    first = np.where(rng.integers(0, 2, size=batch_size) == 1, p, p - 1)  # y or x
    seq = np.empty((batch_size, p + 1), np.int64)
    seq[:, 0] = first
    seq[:, 1:p] = np.arange(p - 1)[None, :]
    seq[:, p] = first
    inputs = _one_hot(seq[:, :p], p + 1)
    targets = seq[:, 1:].astype(np.int32)
    return Batch(inputs, targets, np.ones((batch_size, p), np.float32))


def copy(
    key_or_rng, batch_size: int, length: int, *, delay: int = 10, num_symbols: int = 8
) -> Batch:
    """The copy task: remember ``length`` random symbols and replay them after a delay.

    Symbols ``0 .. num_symbols - 1`` are data, ``num_symbols`` is the blank and
    ``num_symbols + 1`` the delimiter (``I = num_symbols + 2``, one-hot). The input is
    ``length`` symbols drawn uniformly, then ``delay - 1`` blanks, the delimiter, and
    ``length`` blanks, so ``T = 2 * length + delay``. The targets, ``(B, T)`` int32, are
    blanks for the first ``length + delay`` steps and then the ``length`` symbols in
    order; ``mask`` is 1 on those last ``length`` steps (for the all-steps scoring of
    Arjovsky, Shah & Bengio 2016, use a mask of ones: the blank targets are there).
    """
    rng = as_generator(key_or_rng)
    batch_size = check_int(batch_size, "batch_size", 1)
    length = check_int(length, "length", 1)
    delay = check_int(delay, "delay", 1, "(the delimiter takes one step)")
    num_symbols = check_int(num_symbols, "num_symbols", 1)
    blank, delim = num_symbols, num_symbols + 1
    t = 2 * length + delay
    data = rng.integers(0, num_symbols, size=(batch_size, length))
    seq = np.full((batch_size, t), blank, np.int64)
    seq[:, :length] = data
    seq[:, length + delay - 1] = delim
    targets = np.full((batch_size, t), blank, np.int32)
    targets[:, length + delay :] = data
    mask = np.zeros((batch_size, t), np.float32)
    mask[:, length + delay :] = 1.0
    return Batch(_one_hot(seq, num_symbols + 2), targets, mask)


def parity(key_or_rng, batch_size: int, length: int) -> Batch:
    """``length``-bit parity: is the number of ones in a random bit string odd?

    ``inputs`` is ``(B, T, 1)`` float32 with bits in ``{0, 1}`` drawn uniformly
    (``T = length``); ``targets`` is ``(B, T)`` int32 holding, at the last step only
    (where ``mask`` is 1), the XOR of all ``T`` bits: one target per sequence.
    """
    rng = as_generator(key_or_rng)
    batch_size = check_int(batch_size, "batch_size", 1)
    length = check_int(length, "length", 1)
    bits = rng.integers(0, 2, size=(batch_size, length))
    targets = np.zeros((batch_size, length), np.int32)
    targets[:, -1] = bits.sum(axis=1) % 2
    mask = np.zeros((batch_size, length), np.float32)
    mask[:, -1] = 1.0
    return Batch(bits[..., None].astype(np.float32), targets, mask)

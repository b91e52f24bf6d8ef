"""Multi-query associative recall (MQAR): Arora et al. 2023, "Zoology: Measuring
and Improving Recall in Efficient Language Models" (arXiv:2312.04927), Section 3.

A sequence opens with ``num_kv_pairs`` key-value pairs, token after token, and then
asks for every key once, at a random later position: the model must output the
key's value at the query. It measures how many associations a recurrent state can
store and retrieve; the xLSTM paper (Beck et al. 2024, Section 4.1) uses it to show
that the mLSTM's matrix memory recalls where scalar-memory RNNs cannot.

Layout (legend: ``B`` batch, ``T`` time; ``N`` = ``num_kv_pairs``, ``V`` =
``vocab_size``), for one row:

    position  0   1   2   3  ... 2N-2 2N-1 | 2N ... T-1
    input     k1  v1  k2  v2 ... kN   vN   | filler, with k_j at 2N + 2 g_j
    target    0   0   0   0  ... 0    0    | v_j at 2N + 2 g_j, else 0
    mask      0   0   0   0  ... 0    0    | 1 at the N query positions

- keys are drawn without replacement from ``1 .. V//2 - 1`` and values without
  replacement from ``V//2 .. V - 1`` (disjoint halves of the vocabulary; token 0 is
  the filler of Zoology's layout);
- the query of key ``j`` sits at ``2N + 2 g_j``: the gaps ``g_1 .. g_N`` are
  distinct slots of ``0 .. (T - 2N)//2 - 1`` drawn without replacement with
  probabilities proportional to ``g ** (power_a - 1)`` (``g`` counted from 1), a
  power law that favours queries close to the key-value block (``power_a = 1``:
  uniform); so every key is asked exactly once, in a random order, always at an
  even offset after the block;
- the target at a query is the queried key's value (next-token prediction at the
  query token: the model reads the key and answers with its value); every other
  step holds target 0 with mask 0 (Zoology's ignored label ``-100``);
- with ``random_non_queries`` (Zoology's default) every filler step holds a token
  drawn uniformly from ``0 .. V - 1`` (it may equal a key or a value: noise the
  model must ignore), else token 0.

This is Zoology's ``multiquery_ar`` (its sampling, not its random stream): the
power-law draw without replacement is done at once for the batch as a Gumbel top-k,
which has the distribution of NumPy's sequential ``choice(replace=False, p=...)``.
Zoology also asserts an even ``T`` and ``V > T``; neither is needed by the layout,
so neither is required here.
"""

from __future__ import annotations

import numbers

import numpy as np

from rnnjax.data._rng import as_generator, check_int
from rnnjax.data.synthetic import Batch

__all__ = ["mqar"]


def _distinct(rng, batch_size: int, low: int, high: int, n: int) -> np.ndarray:
    """``(B, n)`` int64: per row, ``n`` distinct integers drawn uniformly from
    ``low .. high - 1`` (a random permutation's first ``n``)."""
    order = np.argsort(rng.random((batch_size, high - low)), axis=1)
    return low + order[:, :n]


def _power_law_gaps(rng, batch_size: int, space: int, n: int, power_a: float):
    """``(B, n)`` int64: per row, ``n`` distinct slots of ``0 .. space - 1`` drawn
    without replacement with probabilities proportional to ``(slot + 1) **
    (power_a - 1)``, by Gumbel top-k (the successive-draws distribution)."""
    log_p = (power_a - 1.0) * np.log(np.arange(1, space + 1, dtype=np.float64))
    scores = log_p[None, :] + rng.gumbel(size=(batch_size, space))
    return np.argsort(-scores, axis=1)[:, :n]


def mqar(
    key_or_rng,
    batch_size: int,
    length: int,
    *,
    num_kv_pairs: int = 8,
    vocab_size: int = 8192,
    power_a: float = 0.01,
    random_non_queries: bool = True,
) -> Batch:
    """A batch of multi-query associative recall (Arora et al. 2023; layout in the
    module docstring).

    Args:
      key_or_rng: an ``int`` seed, a ``numpy.random.Generator`` (used as is) or a
        JAX PRNG key; the same seed or key gives the same batch.
      batch_size: ``B``.
      length: ``T``, the sequence length; at least ``4 * num_kv_pairs`` (the
        key-value block takes ``2N`` steps and the ``N`` queries need ``N`` slots
        of two steps after it).
      num_kv_pairs: ``N``, the key-value pairs per sequence, each queried once.
      vocab_size: ``V``; keys come from ``1 .. V//2 - 1``, so ``V//2 - 1 >= N``.
      power_a: the power-law exponent of the query positions, in ``(0, 1]``
        (Zoology's default 0.01 puts most queries soon after the block; 1 is
        uniform).
      random_non_queries: fill the steps that are neither pairs nor queries with
        uniform random tokens (Zoology's default) instead of token 0.

    Returns:
      `Batch` of ``inputs`` ``(B, T)`` int32 token ids, ``targets`` ``(B, T)``
      int32 (the value at each query, 0 elsewhere) and ``mask`` ``(B, T)``
      float32, 1 at the ``N`` query steps of every row. Accuracy on MQAR is the
      fraction of masked steps whose argmax prediction equals the target.
    """
    rng = as_generator(key_or_rng)
    batch_size = check_int(batch_size, "batch_size", 1)
    n = check_int(num_kv_pairs, "num_kv_pairs", 1)
    vocab_size = check_int(vocab_size, "vocab_size", 4)
    length = check_int(
        length,
        "length",
        4 * n,
        f"(4 * num_kv_pairs: {2 * n} steps of pairs, then {n} query slots of 2)",
    )
    half = vocab_size // 2
    if half - 1 < n:
        raise ValueError(
            f"vocab_size: {vocab_size} has only {half - 1} key tokens (1 .. "
            f"{half - 1}) for num_kv_pairs={n} distinct keys; expected vocab_size "
            f">= {2 * (n + 1)}"
        )
    if isinstance(power_a, bool) or not isinstance(power_a, numbers.Real):
        raise TypeError(f"power_a: expected a float, got {type(power_a).__name__}")
    if not 0.0 < power_a <= 1.0:
        raise ValueError(f"power_a: expected a float in (0, 1], got {power_a}")
    rows = np.arange(batch_size)[:, None]
    keys = _distinct(rng, batch_size, 1, half, n)
    values = _distinct(rng, batch_size, half, vocab_size, n)
    gaps = _power_law_gaps(rng, batch_size, (length - 2 * n) // 2, n, float(power_a))
    queries = 2 * n + 2 * gaps
    inputs = np.zeros((batch_size, length), np.int64)
    inputs[:, 0 : 2 * n : 2] = keys
    inputs[:, 1 : 2 * n : 2] = values
    inputs[rows, queries] = keys
    targets = np.zeros((batch_size, length), np.int32)
    targets[rows, queries] = values
    mask = np.zeros((batch_size, length), np.float32)
    mask[rows, queries] = 1.0
    if random_non_queries:
        filler = rng.integers(0, vocab_size, size=(batch_size, length))
        inputs = np.where(inputs == 0, filler, inputs)
    return Batch(inputs.astype(np.int32), targets, mask)

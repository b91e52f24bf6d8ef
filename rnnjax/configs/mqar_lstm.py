"""LSTM on multi-query associative recall (MQAR; Arora et al. 2023, the xLSTM
paper's Section 4.1).

Sequences of ``seq_len`` tokens over ``data.vocab_size`` symbols: ``data.num_kv_pairs``
key-value pairs, then every key queried once (power-law query positions,
``data.power_a``; random filler tokens with ``data.random_non_queries``). The
model reads one-hot token ids and is scored by cross-entropy and argmax accuracy at
the query steps only, on fresh batches drawn from the seed. Sized for a few
minutes on two CPU cores; ``mqar_xlstm`` is the same task with an xLSTM stack.
"""

from __future__ import annotations

import ml_collections

from rnnjax.configs import base


def get_config() -> ml_collections.ConfigDict:
    config = base.get_config()
    config.task = "mqar"
    config.data = ml_collections.ConfigDict()
    # Key-value pairs per sequence (each queried once; seq_len >= 4 * this).
    config.data.num_kv_pairs = 8
    # Keys are drawn from 1 .. vocab_size // 2 - 1, values from the upper half.
    config.data.vocab_size = 64
    # Query positions: P(slot g) ~ g ** (power_a - 1); Zoology's 0.01, 1 is uniform.
    config.data.power_a = 0.01
    # Filler steps hold random tokens (Zoology's default) instead of token 0.
    config.data.random_non_queries = True
    # Batches of `batch_size` sequences in each evaluation.
    config.data.eval_batches = 8

    config.model.hidden_size = 64
    config.optimizer.learning_rate = 3e-3
    config.optimizer.schedule = "cosine"
    config.optimizer.warmup_steps = 100
    config.batch_size = 64
    config.seq_len = 64
    config.steps = 2000
    config.eval_every = 250
    config.checkpoint_every = 1000
    return config

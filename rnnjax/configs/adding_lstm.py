"""LSTM on the adding problem (Hochreiter & Schmidhuber 1997, Experiment 4).

Sequences of ``seq_len`` to ``seq_len + seq_len // 10`` steps; the target is the
sum of the two marked values, scored at the last step. Eval metrics: the MSE and
the fraction of sequences with an absolute error below 0.04 (the paper's
criterion), on fresh batches drawn from the seed.
"""

from __future__ import annotations

import ml_collections

from rnnjax.configs import base


def get_config() -> ml_collections.ConfigDict:
    config = base.get_config()
    config.task = "adding"
    config.data = ml_collections.ConfigDict()
    # Lengths drawn in [seq_len, seq_len + seq_len // 10], as in the paper.
    config.data.variable_length = True
    # Batches of `batch_size` sequences in each evaluation.
    config.data.eval_batches = 8

    config.model.hidden_size = 64
    config.optimizer.learning_rate = 3e-3
    config.batch_size = 64
    config.seq_len = 50
    config.steps = 3000
    config.eval_every = 250
    config.checkpoint_every = 500
    return config

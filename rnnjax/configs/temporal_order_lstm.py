"""LSTM on the temporal order problem (Hochreiter & Schmidhuber 1997, Experiments
6a and 6b).

Sequences of ``seq_len`` to ``seq_len + seq_len // 10`` symbols, classified at the
last step by the order of the ``data.num_relevant`` (2: 6a, 4 classes; 3: 6b, 8
classes) X/Y symbols hidden among distractors. Eval metrics: cross-entropy,
argmax accuracy and ``solved``, the paper's criterion (every output within 0.3 of
the one-hot target), on fresh batches drawn from the seed.
"""

from __future__ import annotations

import ml_collections

from rnnjax.configs import base


def get_config() -> ml_collections.ConfigDict:
    config = base.get_config()
    config.task = "temporal_order"
    config.data = ml_collections.ConfigDict()
    # 2 relevant symbols (Experiment 6a) or 3 (6b).
    config.data.num_relevant = 2
    # Lengths drawn in [seq_len, seq_len + seq_len // 10], as in the paper.
    config.data.variable_length = True
    # Batches of `batch_size` sequences in each evaluation.
    config.data.eval_batches = 8

    config.model.hidden_size = 64
    config.optimizer.learning_rate = 3e-3
    config.batch_size = 64
    config.seq_len = 100
    config.steps = 2000
    config.eval_every = 250
    config.checkpoint_every = 500
    return config

"""LSTM on JSB Chorales (Boulanger-Lewandowski et al. 2012): next-step prediction
of 88-note piano rolls under independent Bernoulli outputs.

Training draws ``batch_size`` chorales per step, each cut to a random window of at
most ``seq_len`` steps; evaluation runs whole chorales. The metric is the negative
log-likelihood per time step (nats, summed over the 88 notes): on the valid split
during training, on the test split at the end and in ``rnnjax eval``. Published
test figures: about 8.5 to 8.7 (Chung et al. 2014).

``data.path`` names a JSON file of the splits, resolved from the current
directory; empty (the default) reads the copy of the JSB Chorales rnnjax ships
(`rnnjax.data.music`), so the config runs offline from any directory.
"""

from __future__ import annotations

import ml_collections

from rnnjax.configs import base


def get_config() -> ml_collections.ConfigDict:
    config = base.get_config()
    config.task = "jsb"
    config.data = ml_collections.ConfigDict()
    # A JSON file of Boulanger-Lewandowski's splits (train, valid, test); empty:
    # the copy rnnjax ships.
    config.data.path = ""

    config.model.hidden_size = 128
    config.model.dropout = 0.0
    config.optimizer.learning_rate = 2e-3
    config.batch_size = 16
    config.seq_len = 64
    config.steps = 2000
    config.eval_every = 250
    config.checkpoint_every = 500
    return config

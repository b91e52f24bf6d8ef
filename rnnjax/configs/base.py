"""The fields every experiment has; each task's file sets ``task``, ``data`` and its
own defaults on top (as the Flax examples' variants change a few fields of
``default.py``)."""

from __future__ import annotations

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    """The shared fields, with neutral defaults."""
    config = ml_collections.ConfigDict()
    # "char", "adding", "temporal_order" or "jsb" (rnnjax.train.tasks.TASKS); the
    # task's data options live under `data`.
    config.task = ""
    config.data = ml_collections.ConfigDict()

    config.model = ml_collections.ConfigDict()
    # An rnnjax cell constructor: lstm, gru, simple_rnn, mgu, min_gru, min_lstm,
    # mlstm, mut3.
    config.model.cell = "lstm"
    config.model.hidden_size = 128
    config.model.num_layers = 1
    # Dropout between stacked layers (rnnjax.stack's `dropout`).
    config.model.dropout = 0.0
    # rnnjax.unroll's `impl`: one of rnnjax.kernels.IMPLS (auto, scan, fused, ...).
    config.model.impl = "auto"

    config.optimizer = ml_collections.ConfigDict()
    # An Optax optimizer: adam, adamw, sgd, rmsprop or adagrad.
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-3
    # rnnjax.train.schedule: constant, linear or cosine (over `steps`).
    config.optimizer.schedule = "constant"
    # Linear warmup from 0 (capped at `steps - 1`).
    config.optimizer.warmup_steps = 0
    # Global-norm gradient clipping; 0 turns it off.
    config.optimizer.clip_norm = 1.0

    config.seed = 0
    # The global batch; a multiple of the number of devices.
    config.batch_size = 32
    config.seq_len = 100
    config.steps = 1000
    config.eval_every = 200
    config.checkpoint_every = 200
    # Checkpoints kept (at least 2, so a damaged newest one has a fallback).
    config.keep = 3
    config.log_every = 50
    return config

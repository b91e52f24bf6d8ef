"""The fields every experiment has; each task's file sets ``task``, ``data`` and its
own defaults on top (as the Flax examples' variants change a few fields of
``default.py``). `xlstm_model` is the ``model`` group of a config that trains an
xLSTM stack instead of an RNN stack."""

from __future__ import annotations

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    """The shared fields, with neutral defaults."""
    config = ml_collections.ConfigDict()
    # "char", "adding", "temporal_order", "jsb" or "mqar" (rnnjax.train.tasks.TASKS);
    # the task's data options live under `data`.
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


def xlstm_model() -> ml_collections.ConfigDict:
    """The ``model`` group of an xLSTM model (`rnnjax.train.xlstm_model`): token
    embedding (or a linear input projection), an xLSTM block stack, a linear
    read-out. It replaces the RNN group (``cell``, ``hidden_size``, ...)."""
    model = ml_collections.ConfigDict()
    # Marks the group as an xLSTM stack's (an RNN stack's group has no `kind`).
    model.kind = "xlstm"
    # The kernels' `impl` of the sLSTM and mLSTM recurrences ("auto" picks).
    model.impl = "auto"
    model.xlstm = ml_collections.ConfigDict()
    # The width of the residual stream (E), the stack's input and output size.
    model.xlstm.embedding_dim = 64
    model.xlstm.num_blocks = 2
    # The sLSTM blocks: the paper's ratio "m:s" ("1:1", "7:1"), or 0-based indices
    # separated by commas ("1": [1:1] with two blocks); "" for an mLSTM-only
    # stack, "all" for an sLSTM-only stack.
    model.xlstm.slstm_at = ""
    # Heads of the mLSTM and sLSTM layers (both divide their inner sizes).
    model.xlstm.num_heads = 4
    # The causal depthwise convolution's kernel size in both block kinds.
    model.xlstm.conv_kernel_size = 4
    # Up-projection factor of the mLSTM block, and of the sLSTM block's gated FFN.
    model.xlstm.mlstm_proj_factor = 2.0
    model.xlstm.ffn_proj_factor = 1.3
    # Dropout inside the blocks (training only).
    model.xlstm.dropout = 0.0
    return model

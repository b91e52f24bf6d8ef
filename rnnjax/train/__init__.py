"""Optax training pieces: masked losses, jitted train and eval steps with gradient
clipping and skipping of non-finite steps, truncated BPTT, learning-rate schedules,
data parallelism over every device (``jax.sharding``), checkpoints that are written
whole or not at all, metrics files, and the experiment loop behind ``rnnjax train``.

Import it explicitly (``import rnnjax.train``): ``import rnnjax`` does not load
Optax.
"""

from rnnjax.train import checkpoint, experiment, losses, metrics
from rnnjax.train.checkpoint import CheckpointError, Checkpoints, CheckpointWarning
from rnnjax.train.experiment import train_and_evaluate
from rnnjax.train.losses import (
    accuracy,
    bernoulli_nll,
    last_step_mse,
    lengths_mask,
    masked_mean,
    mse,
    softmax_cross_entropy,
)
from rnnjax.train.metrics import MetricsWriter
from rnnjax.train.parallel import batch_sharding, data_mesh, replicate, shard_batch
from rnnjax.train.step import (
    TrainState,
    init_state,
    make_eval_step,
    make_train_step,
    schedule,
)
from rnnjax.train.tbptt import make_tbptt_step

__all__ = [
    "CheckpointError",
    "CheckpointWarning",
    "Checkpoints",
    "MetricsWriter",
    "TrainState",
    "accuracy",
    "batch_sharding",
    "bernoulli_nll",
    "checkpoint",
    "data_mesh",
    "experiment",
    "init_state",
    "last_step_mse",
    "lengths_mask",
    "losses",
    "make_eval_step",
    "make_tbptt_step",
    "make_train_step",
    "masked_mean",
    "metrics",
    "mse",
    "replicate",
    "schedule",
    "shard_batch",
    "softmax_cross_entropy",
    "train_and_evaluate",
]

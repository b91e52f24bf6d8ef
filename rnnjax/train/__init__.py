"""Optax training pieces: masked losses, jitted train and eval steps with gradient
clipping and skipping of non-finite steps, truncated BPTT, learning-rate schedules,
data parallelism over every device (``jax.sharding``).

Import it explicitly (``import rnnjax.train``): ``import rnnjax`` does not load
Optax.
"""

from rnnjax.train import losses
from rnnjax.train.losses import (
    accuracy,
    bernoulli_nll,
    last_step_mse,
    lengths_mask,
    masked_mean,
    mse,
    softmax_cross_entropy,
)
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
    "TrainState",
    "accuracy",
    "batch_sharding",
    "bernoulli_nll",
    "data_mesh",
    "init_state",
    "last_step_mse",
    "lengths_mask",
    "losses",
    "make_eval_step",
    "make_tbptt_step",
    "make_train_step",
    "masked_mean",
    "mse",
    "replicate",
    "schedule",
    "shard_batch",
    "softmax_cross_entropy",
]

"""Optax training pieces: masked losses, jitted train and eval steps with gradient
clipping and skipping of non-finite steps, truncated BPTT, learning-rate schedules,
data parallelism over every device (``jax.sharding``), checkpoints that are written
whole or not at all, metrics files, and the experiment behind ``rnnjax train``:
its tasks (`rnnjax.train.tasks`, one file each), the `Trainer` that
owns the jitted functions, the run folders ([`rnnjax.train.runs`][rnnjax.train.runs]).

Import it explicitly (``import rnnjax.train``): ``import rnnjax`` does not load
Optax. The checkpoint, metrics, experiment and task names load on first use, so
the steps do not pay for Orbax, ml_collections and TensorBoard.
"""

import importlib

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
    sharded_objective,
)
from rnnjax.train.tbptt import make_tbptt_step

# name -> (module, attribute or None for the module itself), loaded on first use.
_LAZY = {
    "checkpoint": ("rnnjax.train.checkpoint", None),
    "experiment": ("rnnjax.train.experiment", None),
    "metrics": ("rnnjax.train.metrics", None),
    "tasks": ("rnnjax.train.tasks", None),
    "CheckpointError": ("rnnjax.train.checkpoint", "CheckpointError"),
    "CheckpointWarning": ("rnnjax.train.checkpoint", "CheckpointWarning"),
    "Checkpoints": ("rnnjax.train.checkpoint", "Checkpoints"),
    "MetricsWriter": ("rnnjax.train.metrics", "MetricsWriter"),
    "Trainer": ("rnnjax.train.trainer", "Trainer"),
    "train_and_evaluate": ("rnnjax.train.experiment", "train_and_evaluate"),
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'rnnjax.train' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


__all__ = [
    "CheckpointError",
    "CheckpointWarning",
    "Checkpoints",
    "MetricsWriter",
    "TrainState",
    "Trainer",
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
    "sharded_objective",
    "softmax_cross_entropy",
    "tasks",
    "train_and_evaluate",
]

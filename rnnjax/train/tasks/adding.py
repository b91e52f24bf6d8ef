"""``adding``: the adding problem (Hochreiter & Schmidhuber 1997, Experiment 4).

``valid`` and ``test`` are fixed batches drawn from the seed. Metrics: ``loss`` =
``mse`` and ``solved``, the fraction of sequences with an absolute error below
[`rnnjax.data.ADDING_TOLERANCE`][rnnjax.data.ADDING_TOLERANCE] (0.04).
"""

from __future__ import annotations

import jax.numpy as jnp

from rnnjax import configs, data
from rnnjax.train import losses
from rnnjax.train.tasks.base import TaskData, checked_split, require, rng

__all__ = ["AddingTask"]


class AddingTask:
    """The ``adding`` task (config ``adding_lstm``)."""

    name = "adding"
    paths = ()
    vocabulary = False

    def get_config(self):
        return configs.load("adding_lstm")[1]

    def check(self, config) -> None:
        require(config, "seq_len", config.seq_len >= 11, "an int >= 11")
        batches = config.data.eval_batches
        require(config, "data.eval_batches", batches >= 1, "an int >= 1")

    def load(self, config, vocab=None) -> TaskData:
        variable = config.data.variable_length
        shape = (config.batch_size, config.seq_len)

        def train_batch(step):
            return data.adding(
                rng(config.seed, 0, step), *shape, variable_length=variable
            )

        def eval_batches(split):
            stream = {"valid": 1, "test": 2}[split]
            return [
                data.adding(
                    rng(config.seed, stream, i), *shape, variable_length=variable
                )
                for i in range(config.data.eval_batches)
            ]

        return TaskData(train_batch, checked_split(eval_batches))

    def sizes(self, config, vocab):
        return 2, 1, False

    def seq_lengths(self, batch):
        return batch.seq_lengths()

    def loss(self, outputs, batch):
        return losses.mse(outputs, batch.targets, batch.mask)

    def eval_sums(self, outputs, batch) -> dict:
        err = jnp.abs(outputs - batch.targets)[..., 0]
        hits = (err < data.ADDING_TOLERANCE) & (batch.mask > 0)
        return {"hits": jnp.sum(hits, dtype=jnp.int32)}

    def summary(self, loss, totals) -> dict:
        return {"loss": loss, "mse": loss, "solved": totals["hits"] / totals["count"]}

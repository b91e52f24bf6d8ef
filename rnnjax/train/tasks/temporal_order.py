"""``temporal_order``: the temporal order problem (Hochreiter & Schmidhuber 1997,
Experiments 6a and 6b: ``data.num_relevant`` 2 or 3), a softmax classification
at the last step.

``valid`` and ``test`` are fixed batches drawn from the seed. Metrics: ``loss``
(cross-entropy), ``accuracy`` (argmax) and ``solved``, the paper's criterion: the
fraction of sequences whose every output (the softmax probabilities against the
one-hot target) is within `rnnjax.data.TEMPORAL_ORDER_TOLERANCE` (0.3) of
its target.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rnnjax import configs, data
from rnnjax.train import losses
from rnnjax.train.tasks.base import TaskData, checked_split, require, rng

__all__ = ["TemporalOrderTask", "order_hits"]


def order_hits(logits, batch) -> dict:
    """Counts of the scored steps of ``logits (B, T, C)`` classified by argmax
    (``hits``) and by the paper's criterion, every output within
    ``TEMPORAL_ORDER_TOLERANCE`` of the one-hot target (``solved``)."""
    scored = batch.mask > 0
    probs = jax.nn.softmax(logits, axis=-1)
    target = jax.nn.one_hot(batch.targets, logits.shape[-1])
    within = jnp.all(jnp.abs(probs - target) < data.TEMPORAL_ORDER_TOLERANCE, -1)
    argmax = jnp.argmax(logits, axis=-1) == batch.targets
    return {
        "hits": jnp.sum(argmax & scored, dtype=jnp.int32),
        "solved": jnp.sum(within & scored, dtype=jnp.int32),
    }


class TemporalOrderTask:
    """The ``temporal_order`` task (config ``temporal_order_lstm``)."""

    name = "temporal_order"
    paths = ()
    vocabulary = False

    def get_config(self):
        return configs.load("temporal_order_lstm")[1]

    def check(self, config) -> None:
        require(config, "seq_len", config.seq_len >= 20, "an int >= 20")
        batches = config.data.eval_batches
        require(config, "data.eval_batches", batches >= 1, "an int >= 1")
        relevant = config.data.num_relevant
        require(config, "data.num_relevant", relevant in (2, 3), "2 or 3")

    def load(self, config, vocab=None) -> TaskData:
        shape = (config.batch_size, config.seq_len)
        options = {
            "num_relevant": config.data.num_relevant,
            "variable_length": config.data.variable_length,
        }

        def train_batch(step):
            return data.temporal_order(rng(config.seed, 0, step), *shape, **options)

        def eval_batches(split):
            stream = {"valid": 1, "test": 2}[split]
            return [
                data.temporal_order(rng(config.seed, stream, i), *shape, **options)
                for i in range(config.data.eval_batches)
            ]

        return TaskData(train_batch, checked_split(eval_batches))

    def sizes(self, config, vocab):
        classes = len(data.TEMPORAL_ORDER_CLASSES[config.data.num_relevant])
        return len(data.TEMPORAL_ORDER_SYMBOLS), classes, False

    def seq_lengths(self, batch):
        return batch.seq_lengths()

    def loss(self, outputs, batch):
        return losses.softmax_cross_entropy(outputs, batch.targets, batch.mask)

    def eval_sums(self, outputs, batch) -> dict:
        return order_hits(outputs, batch)

    def summary(self, loss, totals) -> dict:
        count = max(totals["count"], 1)
        return {
            "loss": loss,
            "accuracy": totals["hits"] / count,
            "solved": totals["solved"] / count,
        }

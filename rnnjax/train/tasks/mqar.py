"""``mqar``: multi-query associative recall (Arora et al. 2023, "Zoology"; the
xLSTM paper's Section 4.1 memory test), data from `rnnjax.data.mqar`.

Each sequence stores ``data.num_kv_pairs`` key-value pairs over a vocabulary of
``data.vocab_size`` tokens and then queries every key once; the model reads token
ids (one-hot for an RNN, an embedding for an xLSTM stack) and must output the
queried key's value at each query step. Training draws fresh batches every step
(Zoology trains on a fixed set of 100,000 sequences); ``valid`` and ``test`` are
``data.eval_batches`` fixed batches drawn from the seed. The loss is the
cross-entropy on the query steps only. Metrics: ``loss`` and ``accuracy``, the
fraction of query steps whose argmax output is the right value (Zoology's and the
xLSTM paper's measure).
"""

from __future__ import annotations

import jax.numpy as jnp

from rnnjax import configs, data
from rnnjax.train import losses
from rnnjax.train.tasks.base import TaskData, checked_split, require, rng

__all__ = ["MqarTask"]


class MqarTask:
    """The ``mqar`` task (configs ``mqar_lstm`` and ``mqar_xlstm``)."""

    name = "mqar"
    paths = ()
    vocabulary = False

    def get_config(self):
        return configs.load("mqar_lstm")[1]

    def check(self, config) -> None:
        d = config.data
        pairs, vocab = d.num_kv_pairs, d.vocab_size
        require(config, "data.num_kv_pairs", pairs >= 1, "an int >= 1")
        ok = vocab // 2 - 1 >= pairs
        require(
            config,
            "data.vocab_size",
            ok,
            f"an int >= {2 * (pairs + 1)} (keys 1 .. vocab_size//2 - 1 for "
            f"data.num_kv_pairs={pairs} distinct keys)",
        )
        ok = config.seq_len >= 4 * pairs
        require(config, "seq_len", ok, f"an int >= 4 * data.num_kv_pairs = {4 * pairs}")
        require(config, "data.power_a", 0 < d.power_a <= 1, "a float in (0, 1]")
        require(config, "data.eval_batches", d.eval_batches >= 1, "an int >= 1")

    def load(self, config, vocab=None) -> TaskData:
        shape = (config.batch_size, config.seq_len)
        d = config.data
        options = {
            "num_kv_pairs": d.num_kv_pairs,
            "vocab_size": d.vocab_size,
            "power_a": d.power_a,
            "random_non_queries": d.random_non_queries,
        }

        def train_batch(step):
            return data.mqar(rng(config.seed, 0, step), *shape, **options)

        def eval_batches(split):
            stream = {"valid": 1, "test": 2}[split]
            return [
                data.mqar(rng(config.seed, stream, i), *shape, **options)
                for i in range(d.eval_batches)
            ]

        splits = (
            f"MQAR, {d.num_kv_pairs} key-value pairs, vocabulary {d.vocab_size}, "
            f"T = {config.seq_len}: fresh training batches, {d.eval_batches} "
            f"batches each for valid and test"
        )
        return TaskData(train_batch, checked_split(eval_batches), splits=splits)

    def sizes(self, config, vocab):
        return config.data.vocab_size, config.data.vocab_size, True

    def seq_lengths(self, batch):
        return None

    def loss(self, outputs, batch):
        return losses.softmax_cross_entropy(outputs, batch.targets, batch.mask)

    def eval_sums(self, outputs, batch) -> dict:
        right = (jnp.argmax(outputs, axis=-1) == batch.targets) & (batch.mask > 0)
        return {"hits": jnp.sum(right, dtype=jnp.int32)}

    def summary(self, loss, totals) -> dict:
        return {"loss": loss, "accuracy": totals["hits"] / max(totals["count"], 1)}

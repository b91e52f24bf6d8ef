"""``jsb``: JSB Chorales piano rolls, the next 88-note frame from the ones before.

Training windows of at most ``seq_len`` steps drawn from the ``train`` chorales,
whole chorales in evaluation. Metrics: ``loss`` = ``nll``, the Bernoulli negative
log-likelihood per time step (nats). ``data.path`` names a JSON file of the
splits; empty (the default) reads the copy rnnjax ships
(`rnnjax.data.music.JSB_PATH`).
"""

from __future__ import annotations

import pathlib

import numpy as np

from rnnjax import configs, data
from rnnjax.data import music
from rnnjax.train import losses
from rnnjax.train.tasks.base import TaskData, checked_split, rng, rows

__all__ = ["JsbTask", "piano_batch"]


def piano_batch(rolls, num_steps: int) -> data.Batch:
    """Next-step pairs of ``rolls`` (each ``(T_i, 88)``), padded to ``num_steps``;
    the mask marks the valid steps."""
    inputs, targets, lengths = data.pad_batch(rolls)
    pad = ((0, 0), (0, num_steps - inputs.shape[1]), (0, 0))
    mask = np.arange(num_steps)[None, :] < lengths[:, None]
    return data.Batch(
        np.pad(inputs, pad), np.pad(targets, pad), mask.astype(np.float32)
    )


class JsbTask:
    """The ``jsb`` task (configs ``jsb_lstm`` and ``jsb_gru``)."""

    name = "jsb"
    paths = ("path",)
    vocabulary = False

    def get_config(self):
        return configs.load("jsb_lstm")[1]

    def check(self, config) -> None:
        pass  # data.path may be empty: the shipped copy

    def load(self, config, vocab=None) -> TaskData:
        path = config.data.path or music.JSB_PATH
        if not pathlib.Path(path).is_file():
            raise FileNotFoundError(
                f"config.data.path: no such file {path} (the JSB Chorales JSON; "
                f"leave it empty for the copy rnnjax ships)"
            )
        splits = data.load_jsb(path)
        for split in ("train", "valid", "test"):
            if not [r for r in splits.get(split, []) if len(r) >= 2]:
                raise ValueError(f"config.data.path: {path} has no {split!r} chorales")
        splits = {k: [r for r in v if len(r) >= 2] for k, v in splits.items()}
        train = splits["train"]
        longest = max(len(r) for r in train) - 1
        seq_len, batch_size = config.seq_len, config.batch_size
        if seq_len > longest:
            raise ValueError(
                f"config.seq_len: {seq_len} is longer than the data allows (the "
                f"longest training chorale in {path} gives {longest} next-step pairs)"
            )

        def train_batch(step):
            gen = rng(config.seed, 0, step)
            windows = []
            for i in gen.integers(0, len(train), batch_size):
                roll = train[i]
                start = gen.integers(0, max(len(roll) - 1 - seq_len, 0) + 1)
                windows.append(roll[start : start + seq_len + 1])
            return piano_batch(windows, seq_len)

        def eval_batches(split):
            rolls = splits[split]
            num_steps = max(len(r) for r in rolls) - 1
            groups = [
                rolls[i : i + batch_size] for i in range(0, len(rolls), batch_size)
            ]
            return rows([piano_batch(g, num_steps) for g in groups], batch_size)

        return TaskData(train_batch, checked_split(eval_batches))

    def sizes(self, config, vocab):
        return data.music.NUM_NOTES, data.music.NUM_NOTES, False

    def seq_lengths(self, batch):
        return batch.seq_lengths()

    def loss(self, outputs, batch):
        return losses.bernoulli_nll(outputs, batch.targets, batch.mask)

    def eval_sums(self, outputs, batch) -> dict:
        return {}

    def summary(self, loss, totals) -> dict:
        return {"loss": loss, "nll": loss}

"""``char``: next-character prediction on a UTF-8 text.

The built-in corpus (`rnnjax.data.default_corpus`) by default, else
``data.text_path``; inputs are one-hot character ids. The text is cut in three:
training, then ``data.valid_fraction`` of it (``valid``, evaluated during
training), then the last ``data.test_fraction`` (``test``, evaluated at the end and
by ``rnnjax eval``). Metrics: ``loss`` (nats per character) and ``bpc`` (bits per
character).
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

from rnnjax import configs, data
from rnnjax.train import losses
from rnnjax.train.tasks.base import TaskData, checked_split, require, rng, rows

__all__ = ["CharTask", "text"]


def text(config) -> str:
    """The text of ``config``: ``data.text_path``'s (or the built-in corpus), cut
    to ``data.max_chars`` characters."""
    path = config.data.text_path
    if not path:
        return data.default_corpus(config.data.max_chars)
    if not pathlib.Path(path).is_file():
        raise FileNotFoundError(f"config.data.text_path: no such file {path}")
    return data.load_text(path)[: config.data.max_chars]


def _split(ids, valid_fraction: float, test_fraction: float):
    """``(train, valid, test)``: consecutive parts of ``ids``, the last two of the
    given fractions."""
    n = len(ids)
    test_start = n - int(n * test_fraction)
    valid_start = test_start - int(n * valid_fraction)
    return ids[:valid_start], ids[valid_start:test_start], ids[test_start:]


class CharTask:
    """The ``char`` task (config ``char_lstm``)."""

    name = "char"
    paths = ("text_path",)
    vocabulary = True

    def get_config(self):
        return configs.load("char_lstm")[1]

    def check(self, config) -> None:
        require(config, "data.max_chars", config.data.max_chars >= 2, "an int >= 2")
        valid, test = config.data.valid_fraction, config.data.test_fraction
        require(config, "data.valid_fraction", 0 < valid < 1, "a float in (0, 1)")
        require(config, "data.test_fraction", 0 < test < 1, "a float in (0, 1)")
        ok = valid + test < 1
        require(config, "data.test_fraction", ok, "less than 1 - data.valid_fraction")
        sample = config.sample
        require(config, "sample.length", sample.length >= 1, "an int >= 1")
        require(config, "sample.temperature", sample.temperature >= 0, "a float >= 0")
        require(config, "sample.num_samples", sample.num_samples >= 1, "an int >= 1")

    def load(self, config, vocab=None) -> TaskData:
        chars = text(config)
        vocab = vocab or data.CharVocab.from_text(chars)
        ids = vocab.encode(chars)
        parts = _split(ids, config.data.valid_fraction, config.data.test_fraction)
        seq_len, batch_size = config.seq_len, config.batch_size
        source = config.data.text_path or "the built-in corpus"
        for part, part_ids in zip(("training", "valid", "test"), parts, strict=True):
            if seq_len > len(part_ids) - 1:
                raise ValueError(
                    f"config.seq_len: {seq_len} is longer than the {part} text "
                    f"allows ({len(part_ids)} characters of {source} give at most "
                    f"{max(len(part_ids) - 1, 0)} next-character pairs; "
                    f"data.valid_fraction={config.data.valid_fraction}, "
                    f"data.test_fraction={config.data.test_fraction})"
                )
        train, held = parts[0], dict(zip(("valid", "test"), parts[1:], strict=True))
        offsets = np.arange(seq_len)

        def train_batch(step):
            starts = rng(config.seed, 0, step).integers(
                0, len(train) - seq_len, batch_size
            )
            idx = starts[:, None] + offsets[None, :]
            mask = np.ones(idx.shape, np.float32)
            return data.Batch(train[idx], train[idx + 1], mask)

        def eval_batches(split):
            part = held[split]
            windows = (len(part) - 1) // seq_len
            idx = np.arange(windows)[:, None] * seq_len + offsets[None, :]
            mask = np.ones(idx.shape, np.float32)
            return rows([data.Batch(part[idx], part[idx + 1], mask)], batch_size)

        names = ("train", "valid", "test")
        sizes = " / ".join(
            f"{name} {len(p):,}" for name, p in zip(names, parts, strict=True)
        )
        splits = f"characters of {source}, in order: {sizes}"
        return TaskData(train_batch, checked_split(eval_batches), vocab, splits)

    def sizes(self, config, vocab):
        return vocab.size, vocab.size, True

    def seq_lengths(self, batch):
        return None

    def loss(self, outputs, batch):
        return losses.softmax_cross_entropy(outputs, batch.targets, batch.mask)

    def eval_sums(self, outputs, batch) -> dict:
        return {}

    def summary(self, loss, totals) -> dict:
        return {"loss": loss, "bpc": loss / math.log(2)}

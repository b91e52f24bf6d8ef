"""What a task is: the `Task` protocol, the `TaskData` it loads, and
the helpers the built-in tasks share.

A task is one object (see `rnnjax.train.tasks`) that tells the experiment
everything that differs from one task to another: its config schema and checks,
its data, the model's input and output sizes, the loss, the evaluation sums and
the metrics made from them. Shapes: ``B`` batch, ``T`` time, ``I`` input
features, ``O`` outputs of the read-out.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import ml_collections
import numpy as np

from rnnjax import data

__all__ = [
    "Task",
    "TaskData",
    "checked_split",
    "config_value",
    "require",
    "rng",
    "rows",
]


@dataclasses.dataclass(frozen=True, eq=False)
class TaskData:
    """A task's data: host-side NumPy batches (`rnnjax.data.Batch`).

    Attributes:
      train_batch: ``step -> Batch``, a function of ``(seed, step)`` only.
      eval_batches: ``split -> [Batch]`` for ``"valid"`` and ``"test"``, each of
        ``batch_size`` rows (padding rows have an all-zero mask).
      vocab: the characters of a task on text, else ``None``.
      splits: one line saying what the train, valid and test splits are (printed
        when a run starts).
    """

    train_batch: Callable[[int], data.Batch]
    eval_batches: Callable[[str], list]
    vocab: data.CharVocab | None = None
    splits: str = ""


@runtime_checkable
class Task(Protocol):
    """One task of ``rnnjax train``, named by ``config.task``.

    Attributes:
      name: the value of ``config.task``.
      paths: the keys of ``config.data`` that hold file paths (made absolute in
        the run's saved config).
      vocabulary: whether the inputs are ids of a `rnnjax.data.CharVocab`,
        saved with the run (``vocab.json``) and needed to rebuild it.
    """

    name: str
    paths: tuple[str, ...]
    vocabulary: bool

    def get_config(self) -> ml_collections.ConfigDict:
        """The task's default config, which is also its schema (the keys a config
        of the task has, and the type of each value)."""
        ...

    def check(self, config) -> None:
        """Raises ``ValueError`` naming the key for a value the task cannot use
        (the shared keys are checked before)."""
        ...

    def load(self, config, vocab: data.CharVocab | None = None) -> TaskData:
        """The data of ``config``; errors name the key or the file."""
        ...

    def sizes(self, config, vocab: data.CharVocab | None) -> tuple[int, int, bool]:
        """``(input_size, output_size, one_hot)`` of the model: ``one_hot`` when the
        inputs are ``(B, T)`` int ids of ``input_size`` symbols."""
        ...

    def seq_lengths(self, batch):
        """``(B,)`` lengths for `rnnjax.Stack.apply`, or ``None`` (full)."""
        ...

    def loss(self, outputs, batch):
        """``(mean loss, count)`` of ``outputs (B, T, O)`` on ``batch``."""
        ...

    def eval_sums(self, outputs, batch) -> dict:
        """Integer sums over the batch that `summary` needs besides the
        loss and the count (``{}`` for none); summed over every batch."""
        ...

    def summary(self, loss: float, totals: dict) -> dict:
        """The metrics of an evaluation, from the mean ``loss`` and the summed
        ``totals`` (``"loss"``, ``"count"`` and `eval_sums`'s)."""
        ...


def config_value(config, key: str):
    """``config``'s value at the dotted ``key``."""
    for part in key.split("."):
        config = config[part]
    return config


def require(config, key: str, ok: bool, expected: str) -> None:
    """``ValueError`` "config.KEY: expected EXPECTED, got VALUE" unless ``ok``."""
    if not ok:
        raise ValueError(
            f"config.{key}: expected {expected}, got {config_value(config, key)!r}"
        )


def rng(seed: int, stream: int, index: int) -> np.random.Generator:
    """The generator of batch ``index`` of ``stream`` (0 training, 1 valid, 2 test):
    ``np.random.default_rng((seed, stream, index))``."""
    return np.random.default_rng((seed, stream, index))


def rows(batches: list, batch_size: int) -> list:
    """Cuts ``Batch``es of any number of rows into ``batch_size`` rows, padding the
    last with zero rows (zero mask: not scored)."""
    joined = data.Batch(*(np.concatenate(x) for x in zip(*batches, strict=True)))
    short = -len(joined.inputs) % batch_size
    padded = data.Batch(
        *(np.concatenate([x, np.zeros((short, *x.shape[1:]), x.dtype)]) for x in joined)
    )
    return [
        data.Batch(*(x[i : i + batch_size] for x in padded))
        for i in range(0, len(padded.inputs), batch_size)
    ]


def checked_split(eval_batches):
    """``eval_batches`` that raises ``ValueError`` naming ``split`` for anything but
    ``"valid"`` or ``"test"``."""

    @functools.wraps(eval_batches)
    def checked(split):
        if split not in ("valid", "test"):
            raise ValueError(f"split: expected 'valid' or 'test', got {split!r}")
        return eval_batches(split)

    return checked

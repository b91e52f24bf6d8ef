"""The config of ``rnnjax train``: its checks and the form saved with a run.

A config is an ``ml_collections.ConfigDict`` whose keys and value types are
exactly those of its task's default config (``task.get_config()``, see
`rnnjax.configs` and `rnnjax.train.tasks`), except the ``model`` group: an
xLSTM model's (``model.kind == "xlstm"``) has the keys of
`rnnjax.configs.base.xlstm_model` instead. `check_config` checks the shared
values here and the task's own with ``task.check``.
"""

from __future__ import annotations

import numbers
import os

import ml_collections

from rnnjax.configs import base
from rnnjax.kernels import IMPLS
from rnnjax.train import tasks, xlstm_model
from rnnjax.train.model import cell_spec
from rnnjax.train.tasks.base import config_value, require

__all__ = ["MODEL_KINDS", "OPTIMIZERS", "SCHEDULES", "check_config", "resolved"]

#: ``model.kind``: the model groups other than an RNN stack's (which has no kind),
#: each with the function giving its default (its schema).
MODEL_KINDS = {"xlstm": base.xlstm_model}

#: ``optimizer.name``: the Optax optimizers a config may name.
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad")
#: ``optimizer.schedule``: see [`rnnjax.train.schedule`][rnnjax.train.schedule].
SCHEDULES = ("constant", "linear", "cosine")


def check_config(config) -> None:
    """Raises ``ValueError``/``TypeError`` naming the key for a config that is not
    one of its task's: an unknown or missing key, a value of the wrong type or out
    of range."""
    if not isinstance(config, ml_collections.ConfigDict):
        raise TypeError(
            f"config: expected an ml_collections.ConfigDict, got "
            f"{type(config).__name__}"
        )
    task = tasks.get(config.get("task"))
    want = task.get_config().to_dict()
    kind = _model_kind(config)
    if kind is not None:
        want["model"] = MODEL_KINDS[kind]().to_dict()
    _check_keys(config.to_dict(), want, "config")
    _check_values(config, kind)
    task.check(config)


def _model_kind(config):
    """``config.model.kind`` (``None`` for an RNN stack's group, which has none)."""
    model = config.get("model")
    if not isinstance(model, ml_collections.ConfigDict) or "kind" not in model:
        return None
    if model.kind not in MODEL_KINDS:
        raise ValueError(
            f"config.model.kind: expected one of {list(MODEL_KINDS)} (an RNN "
            f"stack's model group has no kind), got {model.kind!r}"
        )
    return model.kind


def _check_keys(got: dict, want: dict, where: str) -> None:
    for key in got:
        if key not in want:
            raise ValueError(
                f"{where}.{key}: unknown key (known in {where}: "
                f"{', '.join(sorted(want))})"
            )
    for key, expected in want.items():
        name = f"{where}.{key}"
        if key not in got:
            raise ValueError(f"{name}: missing")
        value = got[key]
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                raise TypeError(f"{name}: expected a group of settings, got {value!r}")
            _check_keys(value, expected, name)
        elif not _same_kind(value, expected):
            raise TypeError(
                f"{name}: expected a {type(expected).__name__}, got "
                f"{type(value).__name__} {value!r}"
            )


def _same_kind(value, expected) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(expected, bool)
    if isinstance(expected, float):
        return isinstance(value, numbers.Real)
    return isinstance(value, type(expected))


def _check_values(config, kind) -> None:
    if kind is None:
        _check_rnn_model(config)
    else:
        xlstm_model.check(config)
    for key in (
        "batch_size",
        "seq_len",
        "steps",
        "eval_every",
        "checkpoint_every",
        "log_every",
    ):
        require(config, key, config_value(config, key) >= 1, "a positive int")
    require(config, "keep", config.keep >= 2, "an int >= 2")
    require(config, "seed", config.seed >= 0, "an int >= 0")
    opt = config.optimizer
    require(config, "optimizer.name", opt.name in OPTIMIZERS, f"one of {OPTIMIZERS}")
    require(
        config, "optimizer.schedule", opt.schedule in SCHEDULES, f"one of {SCHEDULES}"
    )
    require(config, "optimizer.learning_rate", opt.learning_rate > 0, "a float > 0")
    require(config, "optimizer.clip_norm", opt.clip_norm >= 0, "0 (off) or > 0")
    require(config, "optimizer.warmup_steps", opt.warmup_steps >= 0, "an int >= 0")


def _check_rnn_model(config) -> None:
    for key in ("model.hidden_size", "model.num_layers"):
        require(config, key, config_value(config, key) >= 1, "a positive int")
    cell_spec(config.model.cell)
    require(config, "model.impl", config.model.impl in IMPLS, f"one of {IMPLS}")
    require(config, "model.dropout", 0 <= config.model.dropout < 1, "a rate in [0, 1)")


def resolved(config) -> ml_collections.ConfigDict:
    """A copy of a checked ``config`` with its task's data paths made absolute (so
    the saved config works from any directory)."""
    config = ml_collections.ConfigDict(config.to_dict())
    for key in tasks.get(config.task).paths:
        if config.data[key]:
            config.data[key] = os.path.abspath(os.path.expanduser(config.data[key]))
    return config

"""The experiment behind the ``rnnjax`` command: a config in, a trained run out.

:func:`train_and_evaluate` is the testable core of ``rnnjax train`` (the shape of
the Flax examples): it checks the config and loads the data before touching the
run directory, trains data-parallel over every local device, evaluates, saves
checkpoints and metrics, and can resume a killed run. A run directory holds:

- ``config.json``: the resolved config (data paths made absolute);
- ``vocab.json``: the characters of a char model, in id order;
- ``checkpoints/<step>/``: Orbax checkpoints of the :class:`TrainState`
  (:mod:`rnnjax.train.checkpoint`);
- ``metrics.jsonl``, ``tensorboard/``, ``curves.png``
  (:mod:`rnnjax.train.metrics`).

Determinism: the batch of step ``s`` is drawn from ``np.random.default_rng((seed,
0, s))`` and its dropout key is ``fold_in(fold_in(key(seed), 1), s)``; the
parameters come from ``fold_in(key(seed), 0)``. So a run resumed from a checkpoint
sees exactly the data and keys of an uninterrupted one, and on the CPU ends with
the same parameters bit for bit.

Tasks (``config.task``), their data and metrics:

- ``char``: next-character prediction on a UTF-8 text (the built-in corpus by
  default), one-hot inputs; the last ``data.valid_fraction`` is held out and is
  both the ``valid`` and the ``test`` split; metric: bits per character (``bpc``).
- ``adding``: the adding problem; ``valid`` and ``test`` are fixed batches drawn
  from the seed; metrics: ``mse`` and ``accuracy`` (absolute error below 0.04).
- ``jsb``: JSB Chorales piano rolls; training windows of at most ``seq_len`` steps,
  whole chorales in evaluation; metric: ``nll`` per time step (nats).
- ``temporal_order``: the temporal order problem (``data.num_relevant`` 2 or 3,
  Hochreiter & Schmidhuber 1997, Experiments 6a and 6b), a softmax classification
  at the last step; ``valid`` and ``test`` as for ``adding``; metrics: ``loss``
  (cross-entropy), ``accuracy`` (argmax) and ``solved``, the paper's criterion:
  the fraction of sequences whose every output (the softmax probabilities against
  the one-hot target) is within 0.3 of its target.

``model.cell`` names a cell constructor, optionally with keyword options in call
syntax, e.g. ``"lstm(peephole=True, forget_bias=0.0)"`` (literal values only).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import json
import math
import numbers
import os
import pathlib
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax import lax
from jax.sharding import PartitionSpec

import rnnjax
from rnnjax import configs, data
from rnnjax.kernels import IMPLS
from rnnjax.train import checkpoint, losses, parallel
from rnnjax.train import metrics as metrics_lib
from rnnjax.train import step as step_lib

__all__ = [
    "Experiment",
    "Model",
    "Task",
    "build",
    "cell_spec",
    "check_config",
    "evaluate",
    "generate",
    "init_state",
    "load_run",
    "train_and_evaluate",
]

CELLS = {
    "lstm": rnnjax.lstm,
    "gru": rnnjax.gru,
    "simple_rnn": rnnjax.simple_rnn,
    "mgu": rnnjax.mgu,
    "min_gru": rnnjax.min_gru,
    "min_lstm": rnnjax.min_lstm,
    "mut3": rnnjax.mut3,
}
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad")
SCHEDULES = ("constant", "linear", "cosine")
#: Each task's built-in config, which is also its schema (the keys allowed).
TASKS = {
    "char": "char_lstm",
    "adding": "adding_lstm",
    "jsb": "jsb_lstm",
    "temporal_order": "temporal_order_lstm",
}
#: Keys a resumed run may change: they steer the loop, not what it computes.
LOOP_KEYS = ("steps", "eval_every", "checkpoint_every", "keep", "log_every")

CONFIG_JSON = "config.json"
VOCAB_JSON = "vocab.json"
CHECKPOINTS = "checkpoints"


# --------------------------------------------------------------------------- config


def check_config(config) -> None:
    """Raises ``ValueError``/``TypeError`` naming the key for a config that is not
    one of its task's: an unknown or missing key, a value of the wrong type or out
    of range."""
    if not isinstance(config, ml_collections.ConfigDict):
        raise TypeError(
            f"config: expected an ml_collections.ConfigDict, got "
            f"{type(config).__name__}"
        )
    task = config.get("task")
    if task not in TASKS:
        raise ValueError(f"config.task: expected one of {sorted(TASKS)}, got {task!r}")
    _, schema = configs.load(TASKS[task])
    _check_keys(config.to_dict(), schema.to_dict(), "config")
    _check_values(config)


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


def _get(config, key):
    for part in key.split("."):
        config = config[part]
    return config


def _require(config, key, ok: bool, expected: str) -> None:
    if not ok:
        raise ValueError(
            f"config.{key}: expected {expected}, got {_get(config, key)!r}"
        )


def _check_values(config) -> None:
    for key in (
        "model.hidden_size",
        "model.num_layers",
        "batch_size",
        "seq_len",
        "steps",
        "eval_every",
        "checkpoint_every",
        "log_every",
    ):
        _require(config, key, _get(config, key) >= 1, "a positive int")
    _require(config, "keep", config.keep >= 2, "an int >= 2")
    _require(config, "seed", config.seed >= 0, "an int >= 0")
    cell_spec(config.model.cell)
    _require(config, "model.impl", config.model.impl in IMPLS, f"one of {IMPLS}")
    _require(config, "model.dropout", 0 <= config.model.dropout < 1, "a rate in [0, 1)")
    opt = config.optimizer
    _require(config, "optimizer.name", opt.name in OPTIMIZERS, f"one of {OPTIMIZERS}")
    _require(
        config, "optimizer.schedule", opt.schedule in SCHEDULES, f"one of {SCHEDULES}"
    )
    _require(config, "optimizer.learning_rate", opt.learning_rate > 0, "a float > 0")
    _require(config, "optimizer.clip_norm", opt.clip_norm >= 0, "0 (off) or > 0")
    _require(config, "optimizer.warmup_steps", opt.warmup_steps >= 0, "an int >= 0")
    if config.task == "char":
        _require(config, "data.max_chars", config.data.max_chars >= 2, "an int >= 2")
        frac = config.data.valid_fraction
        _require(config, "data.valid_fraction", 0 < frac < 1, "a float in (0, 1)")
        _require(config, "sample.length", config.sample.length >= 1, "an int >= 1")
        _require(
            config, "sample.temperature", config.sample.temperature >= 0, "a float >= 0"
        )
        _require(
            config, "sample.num_samples", config.sample.num_samples >= 1, "an int >= 1"
        )
    elif config.task in ("adding", "temporal_order"):
        low = 11 if config.task == "adding" else 20
        _require(config, "seq_len", config.seq_len >= low, f"an int >= {low}")
        _require(
            config, "data.eval_batches", config.data.eval_batches >= 1, "an int >= 1"
        )
    if config.task == "temporal_order":
        _require(
            config, "data.num_relevant", config.data.num_relevant in (2, 3), "2 or 3"
        )
    elif config.task == "jsb":
        _require(config, "data.path", bool(config.data.path), "the path of the file")


def cell_spec(spec) -> tuple[str, dict]:
    """``(name, options)`` of a ``model.cell`` string such as ``"lstm"`` or
    ``"lstm(peephole=True, forget_bias=0.0)"`` (keyword options, literal values);
    ``ValueError`` naming ``config.model.cell`` otherwise."""
    where = f"config.model.cell: expected one of {list(CELLS)}"
    try:
        call = ast.parse(str(spec).strip(), mode="eval").body
        if isinstance(call, ast.Name):
            name, options = call.id, {}
        elif (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name)
            and not call.args
            and all(k.arg for k in call.keywords)
        ):
            name = call.func.id
            options = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        else:
            raise ValueError
    except (SyntaxError, ValueError):
        raise ValueError(
            f"{where}, optionally with keyword options as in "
            f"'lstm(peephole=True)', got {spec!r}"
        ) from None
    if name not in CELLS:
        raise ValueError(f"{where}, got {spec!r}")
    known = inspect.signature(CELLS[name]).parameters
    for key in options:
        if key not in known or key == "hidden_size":
            raise ValueError(
                f"config.model.cell: {name}() has no option {key!r} (in {spec!r})"
            )
    return name, options


def _resolved(config) -> ml_collections.ConfigDict:
    """A copy with data paths made absolute (so the saved config works anywhere)."""
    config = ml_collections.ConfigDict(config.to_dict())
    key = {"char": "text_path", "jsb": "path"}.get(config.task)
    if key and config.data[key]:
        config.data[key] = os.path.abspath(os.path.expanduser(config.data[key]))
    return config


# ------------------------------------------------------------------------ the tasks


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """A task's data: host-side NumPy batches (:class:`rnnjax.data.Batch`).

    Attributes:
      name: ``"char"``, ``"adding"`` or ``"jsb"``.
      train_batch: ``step -> Batch``, a function of ``(seed, step)`` only.
      eval_batches: ``split -> [Batch]`` for ``"valid"`` and ``"test"``, each of
        ``batch_size`` rows (padding rows have an all-zero mask).
      vocab: the characters of a char task, else ``None``.
    """

    name: str
    train_batch: Callable[[int], data.Batch]
    eval_batches: Callable[[str], list]
    vocab: data.CharVocab | None = None


def _rng(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng((seed, stream, index))


def _rows(batches: list, batch_size: int) -> list:
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


def _char_text(config) -> str:
    path = config.data.text_path
    if not path:
        return data.default_corpus(config.data.max_chars)
    if not pathlib.Path(path).is_file():
        raise FileNotFoundError(f"config.data.text_path: no such file {path}")
    return data.load_text(path)[: config.data.max_chars]


def _char_task(config, vocab=None) -> Task:
    text = _char_text(config)
    vocab = vocab or data.CharVocab.from_text(text)
    ids = vocab.encode(text)
    held = int(len(ids) * config.data.valid_fraction)
    train, valid = ids[: len(ids) - held], ids[len(ids) - held :]
    seq_len, batch_size = config.seq_len, config.batch_size
    source = config.data.text_path or "the built-in corpus"
    for part, part_ids in (("training", train), ("held-out", valid)):
        if seq_len > len(part_ids) - 1:
            raise ValueError(
                f"config.seq_len: {seq_len} is longer than the {part} text allows "
                f"({len(part_ids)} characters of {source} give at most "
                f"{max(len(part_ids) - 1, 0)} next-character pairs; "
                f"data.valid_fraction={config.data.valid_fraction})"
            )
    offsets = np.arange(seq_len)

    def train_batch(step):
        starts = _rng(config.seed, 0, step).integers(
            0, len(train) - seq_len, batch_size
        )
        idx = starts[:, None] + offsets[None, :]
        return data.Batch(train[idx], train[idx + 1], np.ones(idx.shape, np.float32))

    def eval_batches(split):
        windows = (len(valid) - 1) // seq_len
        idx = np.arange(windows)[:, None] * seq_len + offsets[None, :]
        mask = np.ones(idx.shape, np.float32)
        return _rows([data.Batch(valid[idx], valid[idx + 1], mask)], batch_size)

    return Task("char", train_batch, _checked_split(eval_batches), vocab)


def _checked_split(eval_batches):
    @functools.wraps(eval_batches)
    def checked(split):
        if split not in ("valid", "test"):
            raise ValueError(f"split: expected 'valid' or 'test', got {split!r}")
        return eval_batches(split)

    return checked


def _adding_task(config) -> Task:
    variable = config.data.variable_length
    shape = (config.batch_size, config.seq_len)

    def train_batch(step):
        return data.adding(_rng(config.seed, 0, step), *shape, variable_length=variable)

    def eval_batches(split):
        stream = {"valid": 1, "test": 2}[split]
        return [
            data.adding(_rng(config.seed, stream, i), *shape, variable_length=variable)
            for i in range(config.data.eval_batches)
        ]

    return Task("adding", train_batch, _checked_split(eval_batches))


def _temporal_order_task(config) -> Task:
    shape = (config.batch_size, config.seq_len)
    options = {
        "num_relevant": config.data.num_relevant,
        "variable_length": config.data.variable_length,
    }

    def train_batch(step):
        return data.temporal_order(_rng(config.seed, 0, step), *shape, **options)

    def eval_batches(split):
        stream = {"valid": 1, "test": 2}[split]
        return [
            data.temporal_order(_rng(config.seed, stream, i), *shape, **options)
            for i in range(config.data.eval_batches)
        ]

    return Task("temporal_order", train_batch, _checked_split(eval_batches))


def _piano_batch(rolls, num_steps: int) -> data.Batch:
    """Next-step pairs of ``rolls``, padded to ``num_steps``; mask = valid steps."""
    inputs, targets, lengths = data.pad_batch(rolls)
    pad = ((0, 0), (0, num_steps - inputs.shape[1]), (0, 0))
    mask = np.arange(num_steps)[None, :] < lengths[:, None]
    return data.Batch(
        np.pad(inputs, pad), np.pad(targets, pad), mask.astype(np.float32)
    )


def _jsb_task(config) -> Task:
    path = config.data.path
    if not pathlib.Path(path).is_file():
        raise FileNotFoundError(
            f"config.data.path: no such file {path} (the JSB Chorales JSON; set "
            f"--config.data.path=...)"
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
            f"config.seq_len: {seq_len} is longer than the data allows (the longest "
            f"training chorale in {path} gives {longest} next-step pairs)"
        )

    def train_batch(step):
        rng = _rng(config.seed, 0, step)
        windows = []
        for i in rng.integers(0, len(train), batch_size):
            roll = train[i]
            start = rng.integers(0, max(len(roll) - 1 - seq_len, 0) + 1)
            windows.append(roll[start : start + seq_len + 1])
        return _piano_batch(windows, seq_len)

    def eval_batches(split):
        rolls = splits[split]
        num_steps = max(len(r) for r in rolls) - 1
        groups = [rolls[i : i + batch_size] for i in range(0, len(rolls), batch_size)]
        return _rows([_piano_batch(g, num_steps) for g in groups], batch_size)

    return Task("jsb", train_batch, _checked_split(eval_batches))


# ------------------------------------------------------------------------ the model


@dataclasses.dataclass(frozen=True)
class Model:
    """An :func:`rnnjax.stack` between an input encoding and a linear read-out.

    Params: ``{"rnn": stack params, "out": {"w": (D*H, O), "b": (O,)}}``. Inputs
    are ``(B, T, I)`` floats, or ``(B, T)`` int ids when ``one_hot`` (then ``I`` is
    the vocabulary size); outputs are ``(B, T, O)``.
    """

    stack: rnnjax.Stack
    input_size: int
    output_size: int
    one_hot: bool
    impl: str

    def init(self, key):
        k_rnn, k_out = jax.random.split(key)
        shape = (self.stack.output_size, self.output_size)
        w = jax.nn.initializers.glorot_uniform()(k_out, shape, jnp.float32)
        return {
            "rnn": self.stack.init(k_rnn, self.input_size),
            "out": {"w": w, "b": jnp.zeros((self.output_size,), jnp.float32)},
        }

    def apply(self, params, inputs, *, seq_lengths=None, carry=None, key=None):
        """``(carry, outputs)``; dropout is on when ``key`` is given."""
        xs = jax.nn.one_hot(inputs, self.input_size) if self.one_hot else inputs
        drop = key is not None and self.stack.has_dropout
        carry, ys = self.stack.apply(
            params["rnn"],
            xs,
            carry=carry,
            seq_lengths=seq_lengths,
            key=key if drop else None,
            training=drop,
            impl=self.impl,
        )
        b = params["out"]["b"].reshape((1,) * (ys.ndim - 1) + (-1,))
        return carry, ys @ params["out"]["w"] + b


def _sizes(config, vocab) -> tuple[int, int, bool]:
    if config.task == "char":
        return vocab.size, vocab.size, True
    if config.task == "adding":
        return 2, 1, False
    if config.task == "temporal_order":
        classes = len(data.TEMPORAL_ORDER_CLASSES[config.data.num_relevant])
        return len(data.TEMPORAL_ORDER_SYMBOLS), classes, False
    return data.music.NUM_NOTES, data.music.NUM_NOTES, False


def _model(config, vocab) -> Model:
    m = config.model
    name, options = cell_spec(m.cell)
    cell = CELLS[name](m.hidden_size, **options)
    stack = rnnjax.stack(cell, m.num_layers, dropout=m.dropout)
    return Model(stack, *_sizes(config, vocab), impl=m.impl)


def _lengths(task_name, batch):
    return None if task_name == "char" else batch.seq_lengths()


def _apply(model, task_name, params, batch, key):
    lengths = _lengths(task_name, batch)
    return model.apply(params, batch.inputs, seq_lengths=lengths, key=key)[1]


def _loss(task_name, outputs, batch):
    """``(mean loss, count)`` of a task."""
    if task_name in ("char", "temporal_order"):
        return losses.softmax_cross_entropy(outputs, batch.targets, batch.mask)
    if task_name == "adding":
        return losses.mse(outputs, batch.targets, batch.mask)
    return losses.bernoulli_nll(outputs, batch.targets, batch.mask)


# ----------------------------------------------------------------------- experiment


@dataclasses.dataclass(frozen=True, eq=False)
class Experiment:
    """Everything :func:`build` derives from a config.

    Attributes:
      config: the checked config, data paths made absolute.
      task: the data (``None`` when built without it, for sampling).
      model: the :class:`Model`.
      optimizer: the Optax optimizer (clipping is added by the train step).
      schedule: its learning-rate schedule.
      vocab: the characters of a char model, else ``None``.
    """

    config: ml_collections.ConfigDict
    task: Task | None
    model: Model
    optimizer: optax.GradientTransformation
    schedule: optax.Schedule
    vocab: data.CharVocab | None

    def apply_fn(self, params, batch, key):
        """The train step's ``apply_fn``."""
        return _apply(self.model, self.config.task, params, batch, key)

    def loss_fn(self, outputs, batch):
        """The train step's ``loss_fn``: ``(mean loss, count)``."""
        return _loss(self.config.task, outputs, batch)


def build(config, *, with_data: bool = True, vocab=None) -> Experiment:
    """Checks ``config`` and builds the experiment: data, model, optimizer.

    Every error a config can cause is raised here, before any training: an unknown
    key, a wrong type or value, a missing, empty or undecodable data file, a
    ``seq_len`` longer than the data, a batch size that is not a multiple of the
    device count, a model that cannot run (a dry run of the loss by shapes only).

    Args:
      config: an ``ml_collections.ConfigDict`` (see :mod:`rnnjax.configs`).
      with_data: load the data; without it (sampling) a char model needs ``vocab``.
      vocab: a :class:`rnnjax.data.CharVocab` to use instead of the data's own.
    """
    check_config(config)
    config = _resolved(config)
    devices = jax.device_count()
    if config.batch_size % devices:
        raise ValueError(
            f"config.batch_size: {config.batch_size} is not a multiple of the "
            f"{devices} devices the batch is split over"
        )
    task = _task(config, vocab) if with_data else None
    vocab = task.vocab if task is not None else vocab
    if config.task == "char" and vocab is None:
        raise ValueError("vocab: a char model built without data needs its vocab")
    opt = config.optimizer
    warmup = min(opt.warmup_steps, config.steps - 1)
    # A constant schedule does not depend on `steps`: leaving it out of the cache
    # key lets a resumed run with more steps reuse the compiled step.
    total = max(warmup, 1) if opt.schedule == "constant" else config.steps
    optimizer, schedule = _optimizer(
        opt.name, opt.learning_rate, opt.schedule, warmup, total
    )
    exp = Experiment(config, task, _model(config, vocab), optimizer, schedule, vocab)
    if task is not None:
        _dry_run(exp)
    return exp


# The caches below let equal configs share compiled functions within a process
# (resuming, evaluating, tests); jit caches by function identity.


@functools.lru_cache(maxsize=8)
def _optimizer(name, learning_rate, schedule_name, warmup, steps):
    """``(optimizer, schedule)``; the same objects for the same arguments."""
    schedule = step_lib.schedule(schedule_name, learning_rate, steps, warmup)
    return getattr(optax, name)(learning_rate=schedule), schedule


@functools.lru_cache(maxsize=8)
def _init_fn(model: Model, optimizer):
    # One compiled function: run eagerly, the initialisers compile op by op.
    return jax.jit(lambda key: step_lib.init_state(model.init(key), optimizer))


@functools.lru_cache(maxsize=8)
def _train_step_fn(model: Model, task_name: str, optimizer, clip_norm, mesh):
    apply_fn = functools.partial(_apply, model, task_name)
    loss_fn = functools.partial(_loss, task_name)
    return step_lib.make_train_step(
        apply_fn, loss_fn, optimizer, clip_norm=clip_norm, mesh=mesh
    )


def _by_hand(mesh):
    """``mesh`` where the batch is better split by ``shard_map`` than by ``jit``'s
    automatic partitioning: several CPU devices, whose recurrent loops the
    partitioner serialises behind all-gathers (benchmarks/RESULTS.md); else None
    (one device, accelerators: the steps follow their inputs' shardings)."""
    if mesh is None or mesh.size < 2:
        return None
    return mesh if all(d.platform == "cpu" for d in mesh.devices.flat) else None


def _task(config, vocab) -> Task:
    if config.task == "char":
        return _char_task(config, vocab)
    if config.task == "adding":
        return _adding_task(config)
    if config.task == "temporal_order":
        return _temporal_order_task(config)
    return _jsb_task(config)


def _dry_run(exp: Experiment) -> None:
    """Traces the loss on the first batch by shapes: a model the config cannot run
    (say ``impl="associative"`` for an LSTM) fails here, naming the argument."""
    params = jax.eval_shape(exp.model.init, jax.random.key(0))
    batch = exp.task.train_batch(0)
    key = jax.random.key(0)
    jax.eval_shape(lambda p, b: exp.loss_fn(exp.apply_fn(p, b, key), b), params, batch)


def init_state(exp: Experiment) -> step_lib.TrainState:
    """The fresh :class:`TrainState` of ``exp`` (parameters from the seed)."""
    key = jax.random.fold_in(jax.random.key(exp.config.seed), 0)
    return _init_fn(exp.model, exp.optimizer)(key)


def _train_step(exp: Experiment, mesh=None):
    clip = exp.config.optimizer.clip_norm or None
    return _train_step_fn(exp.model, exp.config.task, exp.optimizer, clip, mesh)


@functools.lru_cache(maxsize=8)
def _eval_sums(model: Model, task_name: str, mesh=None):
    """A jitted ``(params, batch) -> sums`` of the task's metrics, cached so that
    periodic evaluation compiles once; with a ``mesh``, each device sums its
    slice of the batch (``shard_map``) and the sums are added up."""

    def sums(params, batch):
        lengths = _lengths(task_name, batch)
        _, outputs = model.apply(params, batch.inputs, seq_lengths=lengths)
        loss, count = _loss(task_name, outputs, batch)
        out = {"loss": loss * count, "count": count}
        if task_name == "adding":
            err = jnp.abs(outputs - batch.targets)[..., 0]
            hits = (err < data.ADDING_TOLERANCE) & (batch.mask > 0)
            out["hits"] = jnp.sum(hits, dtype=jnp.int32)
        if task_name == "temporal_order":
            out.update(_order_hits(outputs, batch))
        return out

    if mesh is None:
        return jax.jit(sums)
    axes = tuple(mesh.axis_names)
    return jax.jit(
        jax.shard_map(
            lambda params, batch: lax.psum(sums(params, batch), axes),
            mesh=mesh,
            in_specs=(PartitionSpec(), parallel.batch_sharding(mesh).spec),
            out_specs=PartitionSpec(),
        )
    )


def _order_hits(logits, batch) -> dict:
    """Counts of scored steps classified by argmax (``hits``) and by the paper's
    criterion, every output within ``TEMPORAL_ORDER_TOLERANCE`` of the one-hot
    target (``solved``)."""
    scored = batch.mask > 0
    probs = jax.nn.softmax(logits, axis=-1)
    target = jax.nn.one_hot(batch.targets, logits.shape[-1])
    within = jnp.all(jnp.abs(probs - target) < data.TEMPORAL_ORDER_TOLERANCE, -1)
    argmax = jnp.argmax(logits, axis=-1) == batch.targets
    return {
        "hits": jnp.sum(argmax & scored, dtype=jnp.int32),
        "solved": jnp.sum(within & scored, dtype=jnp.int32),
    }


def evaluate(exp: Experiment, params, split: str = "test", *, mesh=None) -> dict:
    """The task's metrics on ``split`` (``"valid"`` or ``"test"``) as floats.

    ``char``: ``loss`` (nats per character) and ``bpc``; ``adding``: ``loss`` =
    ``mse`` and ``accuracy``; ``jsb``: ``loss`` = ``nll`` (nats per time step);
    ``temporal_order``: ``loss`` (cross-entropy), ``accuracy`` and ``solved``.
    With a ``mesh`` the batches are split over its devices.
    """
    if exp.task is None:
        raise ValueError("exp: built without data, so it cannot be evaluated")
    fn = _eval_sums(exp.model, exp.config.task, _by_hand(mesh))
    totals = {}
    for batch in exp.task.eval_batches(split):
        batch = parallel.shard_batch(batch, mesh) if mesh is not None else batch
        for name, value in jax.device_get(fn(params, batch)).items():
            totals[name] = totals.get(name, 0) + np.float64(value)
    loss = totals["loss"] / max(totals["count"], 1)
    if exp.config.task == "char":
        return {"loss": loss, "bpc": loss / math.log(2)}
    if exp.config.task == "adding":
        return {"loss": loss, "mse": loss, "accuracy": totals["hits"] / totals["count"]}
    if exp.config.task == "temporal_order":
        count = max(totals["count"], 1)
        return {
            "loss": loss,
            "accuracy": totals["hits"] / count,
            "solved": totals["solved"] / count,
        }
    return {"loss": loss, "nll": loss}


def generate(
    exp: Experiment,
    params,
    prompt: str,
    *,
    length: int,
    temperature: float = 1.0,
    num_samples: int = 1,
    seed: int = 0,
) -> list[str]:
    """``num_samples`` texts: ``prompt`` followed by ``length`` characters drawn
    from a char model, each from ``softmax(logits / temperature)`` (``0``: the
    most likely character)."""
    if exp.vocab is None:
        raise ValueError(
            f"sample: only a char model generates text; this run's task is "
            f"{exp.config.task!r}"
        )
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"prompt: expected at least one character, got {prompt!r}")
    for name, value, low in (("length", length, 1), ("num_samples", num_samples, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    if not temperature >= 0:
        raise ValueError(f"temperature: expected a float >= 0, got {temperature!r}")
    try:
        ids = exp.vocab.encode(prompt)
    except ValueError as e:
        raise ValueError(f"prompt: {str(e).removeprefix('text: ')}") from None
    ids = np.tile(ids[None, :], (num_samples, 1))
    out = _generate(
        exp.model, params, jnp.asarray(ids), jax.random.key(seed), temperature, length
    )
    return [prompt + exp.vocab.decode(row) for row in np.asarray(out)]


@functools.partial(jax.jit, static_argnums=(0, 5))
def _generate(model, params, prompt_ids, key, temperature, length):
    """``(N, length)`` ids following ``prompt_ids (N, P)``."""
    carry, logits = model.apply(params, prompt_ids)
    greedy = temperature == 0
    scale = jnp.where(greedy, 1.0, temperature)

    def step(loop, key):
        carry, logits = loop
        drawn = jax.random.categorical(key, logits / scale, axis=-1)
        ids = jnp.where(greedy, jnp.argmax(logits, axis=-1), drawn)
        carry, logits = model.apply(params, ids[:, None], carry=carry)
        return (carry, logits[:, 0]), ids

    _, ids = jax.lax.scan(step, (carry, logits[:, -1]), jax.random.split(key, length))
    return ids.T


# ---------------------------------------------------------------------- run folders


def _load_json(path: pathlib.Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: missing ({what})") from None
    except ValueError as e:
        raise ValueError(f"{path}: not readable JSON ({e})") from None


def saved_config(workdir) -> ml_collections.ConfigDict:
    """The config a run saved in ``workdir/config.json``."""
    path = pathlib.Path(workdir) / CONFIG_JSON
    return ml_collections.ConfigDict(_load_json(path, "not an rnnjax run directory"))


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _check_resumable(workdir: pathlib.Path, exp: Experiment) -> None:
    saved = _flat(saved_config(workdir).to_dict())
    now = _flat(exp.config.to_dict())
    changed = [
        f"{k}: {saved.get(k)!r} in the run, {now.get(k)!r} now"
        for k in sorted(set(saved) | set(now))
        if saved.get(k) != now.get(k) and k not in LOOP_KEYS
    ]
    if changed:
        raise ValueError(
            f"config: differs from the one {workdir} was trained with, in "
            f"{'; '.join(changed)} (a resumed run may change only {LOOP_KEYS})"
        )
    if exp.vocab is not None:
        chars = _load_json(workdir / VOCAB_JSON, "the run's vocabulary")
        if tuple(chars) != exp.vocab.chars:
            raise ValueError(
                f"{workdir / VOCAB_JSON}: the text's characters differ from the ones "
                f"the run was trained on"
            )


def _write_json(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _prepare(workdir: pathlib.Path, exp: Experiment, resume: bool) -> None:
    """Refuses a workdir in use unless resuming; then creates it and saves the
    config (and vocabulary)."""
    if workdir.exists() and not workdir.is_dir():
        raise ValueError(f"workdir: {workdir} exists and is not a directory")
    used = workdir.is_dir() and any(workdir.iterdir())
    if used and not resume:
        raise ValueError(
            f"workdir: {workdir} is not empty; pass --resume to continue the run in "
            f"it, or choose another --workdir"
        )
    if used:
        _check_resumable(workdir, exp)
    workdir.mkdir(parents=True, exist_ok=True)
    _write_json(workdir / CONFIG_JSON, exp.config.to_json(indent=2) + "\n")
    if exp.vocab is not None:
        _write_json(workdir / VOCAB_JSON, json.dumps(list(exp.vocab.chars)) + "\n")


def load_run(workdir, *, with_data: bool = True):
    """``(exp, state, step)``: a run's experiment, rebuilt from its saved config,
    and its newest complete checkpoint (damaged newer ones are skipped with a
    :class:`rnnjax.train.checkpoint.CheckpointWarning`)."""
    workdir = pathlib.Path(workdir)
    config = saved_config(workdir)
    vocab = None
    if config.get("task") == "char":
        chars = _load_json(workdir / VOCAB_JSON, "the run's vocabulary")
        vocab = data.CharVocab(tuple(chars))
    exp = build(config, with_data=with_data, vocab=vocab)
    ckpts = checkpoint.Checkpoints(workdir / CHECKPOINTS, read_only=True)
    with ckpts:
        restored = ckpts.restore_latest(init_state(exp))
    if restored is None:
        raise checkpoint.CheckpointError(f"{workdir / CHECKPOINTS}: no checkpoints")
    step, state = restored
    return exp, state, step


# ------------------------------------------------------------------------- training


@functools.lru_cache(maxsize=8)
def _jitted(fn):
    return jax.jit(fn)


def _fmt(values: dict) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in values.items())


def train_and_evaluate(
    config, workdir, *, resume: bool = False, progress: bool | None = None
) -> dict:
    """Trains ``config`` in ``workdir``, evaluates, and returns the results.

    Args:
      config: an ``ml_collections.ConfigDict`` of a task (see :mod:`rnnjax.configs`).
      workdir: the run directory; must be empty or absent unless ``resume``.
      resume: continue from the newest complete checkpoint in ``workdir`` (a
        damaged newest one is skipped with a warning); an empty ``workdir`` starts
        afresh. The config must equal the saved one except for ``LOOP_KEYS``.
      progress: a tqdm progress bar (``None``: when stderr is a terminal); without
        it a line is printed every ``log_every`` steps.

    Returns:
      ``{"step", "valid", "test"}`` (the last evaluations) and, for a char model,
      ``"samples"``.
    """
    exp = build(config)
    workdir = pathlib.Path(workdir)
    _prepare(workdir, exp, resume)
    print(f"run directory: {workdir}", flush=True)
    cfg = exp.config
    mesh = parallel.data_mesh()
    if mesh.size > 1:
        how = "shard_map" if _by_hand(mesh) else "jit"
        kind = mesh.devices.flat[0].platform.upper()
        print(f"batch split over {mesh.size} {kind} devices ({how})", flush=True)
    state = parallel.replicate(init_state(exp), mesh)
    start = 0
    with checkpoint.Checkpoints(workdir / CHECKPOINTS, keep=cfg.keep) as ckpts:
        if resume:
            restored = ckpts.restore_latest(state)
            if restored is not None:
                start, state = restored
                ckpts.discard_after(start)
                print(f"resuming {workdir} from step {start}", flush=True)
        with metrics_lib.MetricsWriter(workdir, start_step=start) as writer:
            state, valid = _loop(exp, state, start, mesh, ckpts, writer, progress)
            test = evaluate(exp, state.params, "test", mesh=mesh)
            writer.write(cfg.steps, "test", test)
    records = metrics_lib.read(workdir / metrics_lib.JSONL)
    metrics_lib.plot(records, workdir / metrics_lib.PLOT, title=str(workdir.name))
    print(f"test: {_fmt(test)}", flush=True)
    results = {"step": cfg.steps, "valid": valid, "test": test}
    if exp.vocab is not None:
        s = cfg.sample
        results["samples"] = generate(
            exp,
            state.params,
            s.prompt,
            length=s.length,
            temperature=s.temperature,
            num_samples=s.num_samples,
            seed=cfg.seed,
        )
        for i, text in enumerate(results["samples"]):
            print(f"--- sample {i} (temperature {s.temperature}) ---\n{text}")
    return results


def _loop(exp, state, start, mesh, ckpts, writer, progress):
    """Steps ``start .. steps - 1``; returns ``(state, last valid metrics)``."""
    from tqdm.auto import tqdm

    cfg = exp.config
    train_step = _train_step(exp, _by_hand(mesh))
    keys = jax.random.fold_in(jax.random.key(cfg.seed), 1)
    disable = None if progress is None else not progress
    bar = tqdm(total=cfg.steps, initial=start, disable=disable, unit="step")
    window, valid, tick = [], {}, time.perf_counter()
    for s in range(start, cfg.steps):
        batch = parallel.shard_batch(exp.task.train_batch(s), mesh)
        key = parallel.replicate(jax.random.fold_in(keys, s), mesh)
        state, step_metrics = train_step(state, batch, key)
        window.append(step_metrics["loss"])
        bar.update(1)
        done = s + 1
        last = done == cfg.steps
        if done % cfg.log_every == 0 or last:
            loss = np.mean(jax.device_get(window))  # waits for the steps to finish
            rate = len(window) / (time.perf_counter() - tick)
            values = {
                "loss": loss,
                "grad_norm": step_metrics["grad_norm"],
                "learning_rate": _jitted(exp.schedule)(done),
                "skipped": state.skipped,
                "steps_per_sec": rate,
            }
            writer.write(done, "train", values)
            bar.set_postfix(loss=f"{values['loss']:.4f}")
            if bar.disable:
                print(
                    f"step {done}/{cfg.steps}  loss {values['loss']:.4f}  "
                    f"{rate:.2f} steps/s",
                    flush=True,
                )
            window = []
        if done % cfg.eval_every == 0 or last:
            valid = evaluate(exp, state.params, "valid", mesh=mesh)
            writer.write(done, "valid", valid)
            bar.write(f"step {done}: valid {_fmt(valid)}")
        if done % cfg.checkpoint_every == 0 or last:
            ckpts.save(done, state)
        if not window:
            tick = time.perf_counter()
    bar.close()
    if not valid:
        valid = evaluate(exp, state.params, "valid", mesh=mesh)
    return state, valid

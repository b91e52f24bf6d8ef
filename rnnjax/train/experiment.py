"""The experiment behind the ``rnnjax`` command: a config in, a trained run out.

`train_and_evaluate` is the testable core of ``rnnjax train`` (the shape of
the Flax examples): it checks the config and loads the data before touching the
run directory, trains data-parallel over every local device, evaluates, saves
checkpoints and metrics, and can resume a killed run. Its pieces live apart:

- `rnnjax.train.tasks`: one object per task (``config.task``: ``char``,
  ``adding``, ``temporal_order``, ``jsb``, ``mqar``), its data, loss and metrics;
- [`rnnjax.train.schema`][rnnjax.train.schema]: the config checks;
- [`rnnjax.train.model`][rnnjax.train.model]: the stack and its read-out;
- `rnnjax.train.trainer`: the `Trainer` owning the jitted functions,
  and the loop (with the determinism rules of a run);
- [`rnnjax.train.runs`][rnnjax.train.runs]: the run directory and the rules of resuming.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable

import jax
import ml_collections
import optax

from rnnjax import data
from rnnjax.train import checkpoint, parallel, runs, schema, tasks
from rnnjax.train import metrics as metrics_lib
from rnnjax.train import step as step_lib
from rnnjax.train.model import CELLS, Model, cell_spec, make_model
from rnnjax.train.runs import (
    CHECKPOINTS,
    CONFIG_JSON,
    LOOP_KEYS,
    VOCAB_JSON,
    saved_config,
)
from rnnjax.train.schema import OPTIMIZERS, SCHEDULES, check_config
from rnnjax.train.trainer import Trainer, format_metrics

__all__ = [
    "CELLS",
    "CHECKPOINTS",
    "CONFIG_JSON",
    "LOOP_KEYS",
    "OPTIMIZERS",
    "SCHEDULES",
    "VOCAB_JSON",
    "Experiment",
    "Model",
    "Trainer",
    "build",
    "cell_spec",
    "check_config",
    "evaluate",
    "generate",
    "init_state",
    "load_run",
    "saved_config",
    "train_and_evaluate",
]


@dataclasses.dataclass(frozen=True, eq=False)
class Experiment:
    """Everything [`build`][rnnjax.train.experiment.build] derives from a config.

    Attributes:
      config: the checked config, data paths made absolute.
      task: the task object (`rnnjax.train.tasks.Task`) of ``config.task``.
      data: the task's data (``None`` when built without it, for sampling).
      model: the [`Model`][rnnjax.train.experiment.Model].
      optimizer: the Optax optimizer (clipping is added by the train step).
      schedule: its learning-rate schedule.
      vocab: the characters of a model on text, else ``None``.
    """

    config: ml_collections.ConfigDict
    task: tasks.Task
    data: tasks.TaskData | None
    model: Model
    optimizer: optax.GradientTransformation
    schedule: optax.Schedule
    vocab: data.CharVocab | None

    def apply_fn(self, params, batch, key):
        """The train step's ``apply_fn``: the model's outputs ``(B, T, O)``."""
        lengths = self.task.seq_lengths(batch)
        return self.model.apply(params, batch.inputs, seq_lengths=lengths, key=key)[1]

    def loss_fn(self, outputs, batch):
        """The train step's ``loss_fn``: ``(mean loss, count)``."""
        return self.task.loss(outputs, batch)


def build(config, *, with_data: bool = True, vocab=None) -> Experiment:
    """Checks ``config`` and builds the experiment: data, model, optimizer.

    Every error a config can cause is raised here, before any training: an unknown
    key, a wrong type or value, a missing, empty or undecodable data file, a
    ``seq_len`` longer than the data, a batch size that is not a multiple of the
    device count, a model that cannot run (a dry run of the loss by shapes only).

    Args:
      config: an ``ml_collections.ConfigDict`` (see `rnnjax.configs`).
      with_data: load the data; without it (sampling) a model on text needs
        ``vocab``.
      vocab: a `rnnjax.data.CharVocab` to use instead of the data's own.
    """
    check_config(config)
    config = schema.resolved(config)
    task = tasks.get(config.task)
    devices = jax.device_count()
    if config.batch_size % devices:
        raise ValueError(
            f"config.batch_size: {config.batch_size} is not a multiple of the "
            f"{devices} devices the batch is split over"
        )
    task_data = task.load(config, vocab) if with_data else None
    vocab = task_data.vocab if task_data is not None else vocab
    if task.vocabulary and vocab is None:
        raise ValueError(
            f"vocab: a {task.name} model built without data needs its vocab"
        )
    opt = config.optimizer
    warmup = min(opt.warmup_steps, config.steps - 1)
    # A constant schedule does not depend on `steps`.
    total = max(warmup, 1) if opt.schedule == "constant" else config.steps
    schedule = step_lib.schedule(opt.schedule, opt.learning_rate, total, warmup)
    optimizer = getattr(optax, opt.name)(learning_rate=schedule)
    model = make_model(config.model, *task.sizes(config, vocab))
    exp = Experiment(config, task, task_data, model, optimizer, schedule, vocab)
    if task_data is not None:
        _dry_run(exp)
    return exp


def _dry_run(exp: Experiment) -> None:
    """Traces the loss on the first batch by shapes: a model the config cannot run
    (say ``impl="associative"`` for an LSTM) fails here, naming the argument."""
    params = jax.eval_shape(exp.model.init, jax.random.key(0))
    batch = exp.data.train_batch(0)
    key = jax.random.key(0)
    jax.eval_shape(lambda p, b: exp.loss_fn(exp.apply_fn(p, b, key), b), params, batch)


def init_state(exp: Experiment) -> step_lib.TrainState:
    """The fresh [`TrainState`][rnnjax.train.TrainState] of ``exp`` (parameters from the
    seed); [`Trainer.init_state`][rnnjax.train.experiment.Trainer.init_state]."""
    return Trainer(exp).init_state()


def evaluate(exp: Experiment, params, split: str = "test", *, mesh=None) -> dict:
    """The task's metrics on ``split`` (``"valid"`` or ``"test"``) as floats.

    ``char``: ``loss`` (nats per character) and ``bpc``; ``adding``: ``loss`` =
    ``mse`` and ``solved`` (the fraction of sequences with an absolute error below
    0.04); ``jsb``: ``loss`` = ``nll`` (nats per time step);
    ``temporal_order``: ``loss`` (cross-entropy), ``accuracy`` and ``solved``;
    ``mqar``: ``loss`` (cross-entropy on the query steps) and ``accuracy``.
    With a ``mesh`` the batches are split over its devices. `Trainer.evaluate`.
    """
    return Trainer(exp, mesh).evaluate(params, split)


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
    most likely character); `Trainer.generate`."""
    return Trainer(exp).generate(
        params,
        prompt,
        length=length,
        temperature=temperature,
        num_samples=num_samples,
        seed=seed,
    )


def load_run(workdir, *, with_data: bool = True):
    """``(exp, state, step)``: a run's experiment, rebuilt from its saved config,
    and its newest complete checkpoint (damaged newer ones are skipped with a
    `rnnjax.train.checkpoint.CheckpointWarning`)."""
    workdir = pathlib.Path(workdir)
    config = saved_config(workdir)
    task = tasks.get(config.get("task"))
    vocab = runs.saved_vocab(workdir) if task.vocabulary else None
    exp = build(config, with_data=with_data, vocab=vocab)
    ckpts = checkpoint.Checkpoints(workdir / CHECKPOINTS, read_only=True)
    with ckpts:
        restored = ckpts.restore_latest(init_state(exp))
    if restored is None:
        raise checkpoint.CheckpointError(f"{workdir / CHECKPOINTS}: no checkpoints")
    step, state = restored
    return exp, state, step


def train_and_evaluate(
    config,
    workdir,
    *,
    resume: bool = False,
    progress: bool | None = None,
    on_save: Callable[[str, int], None] | None = None,
) -> dict:
    """Trains ``config`` in ``workdir``, evaluates, and returns the results.

    Args:
      config: an ``ml_collections.ConfigDict`` of a task (see `rnnjax.configs`).
      workdir: the run directory; must be empty or absent unless ``resume``.
      resume: continue from the newest complete checkpoint in ``workdir`` (a
        damaged newest one is skipped with a warning); an empty ``workdir`` starts
        afresh. The config must equal the saved one except for ``LOOP_KEYS``.
      progress: a tqdm progress bar (``None``: when stderr is a terminal); without
        it a line is printed every ``log_every`` steps.
      on_save: called as ``on_save(phase, step)`` in each checkpoint save (see
        `Checkpoints`); tests use it to stop a run there.

    Returns:
      ``{"step", "valid", "test"}`` (the last evaluations) and, for a char model,
      ``"samples"``.
    """
    exp = build(config)
    workdir = pathlib.Path(workdir)
    runs.prepare(workdir, exp.config, exp.vocab, resume)
    print(f"run directory: {workdir}", flush=True)
    if exp.data.splits:
        print(f"data: {exp.data.splits}", flush=True)
    cfg = exp.config
    mesh = parallel.data_mesh()
    trainer = Trainer(exp, mesh)
    if mesh.size > 1:
        how = "shard_map" if trainer.by_hand else "jit"
        kind = mesh.devices.flat[0].platform.upper()
        print(f"batch split over {mesh.size} {kind} devices ({how})", flush=True)
    state = parallel.replicate(trainer.init_state(), mesh)
    start = 0
    ckpts = checkpoint.Checkpoints(
        workdir / CHECKPOINTS, keep=cfg.keep, on_save=on_save
    )
    with ckpts:
        if resume:
            restored = ckpts.restore_latest(state)
            if restored is None:
                print(f"no checkpoint in {workdir}: starting at step 0", flush=True)
            else:
                start, state = restored
                ckpts.discard_after(start)
                print(f"resuming {workdir} from step {start}", flush=True)
        with metrics_lib.MetricsWriter(workdir, start_step=start) as writer:
            state, valid = trainer.fit(state, start, ckpts, writer, progress)
            test = trainer.evaluate(state.params, "test")
            writer.write(cfg.steps, "test", test)
    records = metrics_lib.read(workdir / metrics_lib.JSONL)
    metrics_lib.plot(records, workdir / metrics_lib.PLOT, title=str(workdir.name))
    print(f"test: {format_metrics(test)}", flush=True)
    results = {"step": cfg.steps, "valid": valid, "test": test}
    if exp.vocab is not None:
        s = cfg.sample
        results["samples"] = trainer.generate(
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

"""The trainer: runs an [`Experiment`][rnnjax.train.experiment.Experiment] and owns its
jitted functions (parameter init, train step, evaluation sums, text generation,
the learning-rate schedule), each compiled once per trainer.

Determinism: the batch of step ``s`` is drawn from ``np.random.default_rng((seed,
0, s))`` (`rnnjax.train.tasks.base.rng`) and its dropout key is
``fold_in(fold_in(key(seed), 1), s)``; the parameters come from
``fold_in(key(seed), 0)``. So a run resumed from a checkpoint sees exactly the
data and keys of an uninterrupted one, and on the CPU ends with the same
parameters bit for bit.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec

from rnnjax.train import parallel
from rnnjax.train import step as step_lib

__all__ = ["Trainer", "format_metrics", "shard_map_mesh"]


def shard_map_mesh(mesh):
    """``mesh`` where the batch is better split by ``shard_map`` than by ``jit``'s
    automatic partitioning: several CPU devices, whose recurrent loops the
    partitioner serialises behind all-gathers (benchmarks/RESULTS.md); else None
    (one device, accelerators: the steps follow their inputs' shardings)."""
    if mesh is None or mesh.size < 2:
        return None
    return mesh if all(d.platform == "cpu" for d in mesh.devices.flat) else None


def format_metrics(values: dict) -> str:
    """``"loss 0.1234  bpc 0.1780"``: metrics as one line."""
    return "  ".join(f"{k} {v:.4f}" for k, v in values.items())


def _generate_ids(model, params, prompt_ids, key, temperature, length):
    """``(B, length)`` ids following ``prompt_ids (B, T)``."""
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


class Trainer:
    """Trains and evaluates ``exp`` on ``mesh`` (``None``: one device).

    With a ``mesh`` of several devices the batches are split over them (pass
    states and batches placed by [`rnnjax.train.replicate`][rnnjax.train.replicate] and
    `rnnjax.train.shard_batch`); on several CPU devices the steps split them
    by ``shard_map`` ([`shard_map_mesh`][rnnjax.train.trainer.shard_map_mesh]).
    """

    def __init__(self, exp, mesh=None):
        self.exp = exp
        self.mesh = mesh
        by_hand = shard_map_mesh(mesh)
        self.by_hand = by_hand is not None
        model, optimizer = exp.model, exp.optimizer
        self._init = jax.jit(
            lambda key: step_lib.init_state(model.init(key), optimizer)
        )
        clip = exp.config.optimizer.clip_norm or None
        self.train_step = step_lib.make_train_step(
            exp.apply_fn, exp.loss_fn, optimizer, clip_norm=clip, mesh=by_hand
        )
        self._eval_sums = self._make_eval_sums(by_hand)
        self._learning_rate = jax.jit(exp.schedule)
        self._generate = jax.jit(
            functools.partial(_generate_ids, model), static_argnums=(4,)
        )

    def init_state(self) -> step_lib.TrainState:
        """The fresh `TrainState` (parameters from the seed)."""
        key = jax.random.fold_in(jax.random.key(self.exp.config.seed), 0)
        return self._init(key)

    def _make_eval_sums(self, mesh):
        """A jitted ``(params, batch) -> sums`` of the task's metrics; with a
        ``mesh``, each device sums its slice of the batch (``shard_map``) and the
        sums are added up."""
        exp = self.exp

        def sums(params, batch):
            lengths = exp.task.seq_lengths(batch)
            _, outputs = exp.model.apply(params, batch.inputs, seq_lengths=lengths)
            loss, count = exp.task.loss(outputs, batch)
            out = {"loss": loss * count, "count": count}
            out.update(exp.task.eval_sums(outputs, batch))
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

    def evaluate(self, params, split: str = "test") -> dict:
        """The task's metrics on ``split`` (``"valid"`` or ``"test"``) as floats
        (the task's ``summary``)."""
        exp = self.exp
        if exp.data is None:
            raise ValueError("exp: built without data, so it cannot be evaluated")
        totals = {}
        for batch in exp.data.eval_batches(split):
            if self.mesh is not None:
                batch = parallel.shard_batch(batch, self.mesh)
            for name, value in jax.device_get(self._eval_sums(params, batch)).items():
                totals[name] = totals.get(name, 0) + np.float64(value)
        loss = totals["loss"] / max(totals["count"], 1)
        return exp.task.summary(loss, totals)

    def generate(
        self,
        params,
        prompt: str,
        *,
        length: int,
        temperature: float = 1.0,
        num_samples: int = 1,
        seed: int = 0,
    ) -> list[str]:
        """``num_samples`` texts: ``prompt`` followed by ``length`` characters drawn
        from a model on text, each from ``softmax(logits / temperature)`` (``0``:
        the most likely character)."""
        exp = self.exp
        if exp.vocab is None:
            raise ValueError(
                f"sample: only a char model generates text; this run's task is "
                f"{exp.config.task!r}"
            )
        if not isinstance(prompt, str) or not prompt:
            raise ValueError(f"prompt: expected at least one character, got {prompt!r}")
        for name, value in (("length", length), ("num_samples", num_samples)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
        if not temperature >= 0:
            raise ValueError(f"temperature: expected a float >= 0, got {temperature!r}")
        try:
            ids = exp.vocab.encode(prompt)
        except ValueError as e:
            raise ValueError(f"prompt: {str(e).removeprefix('text: ')}") from None
        ids = jnp.asarray(np.tile(ids[None, :], (num_samples, 1)))
        out = self._generate(params, ids, jax.random.key(seed), temperature, length)
        return [prompt + exp.vocab.decode(row) for row in np.asarray(out)]

    def fit(self, state, start: int, ckpts, writer, progress: bool | None = None):
        """Steps ``start .. config.steps - 1`` from ``state``, writing metrics to
        ``writer`` (`MetricsWriter`), evaluating on
        ``valid`` every ``eval_every`` steps and saving to ``ckpts``
        (`Checkpoints`) every ``checkpoint_every`` steps and
        at the end. ``progress``: a tqdm bar (``None``: when stderr is a
        terminal), else a line every ``log_every`` steps.

        Returns:
          ``(state, valid)``: the final state and the last ``valid`` metrics.
        """
        from tqdm.auto import tqdm

        cfg, mesh = self.exp.config, self.mesh
        keys = jax.random.fold_in(jax.random.key(cfg.seed), 1)
        disable = None if progress is None else not progress
        bar = tqdm(total=cfg.steps, initial=start, disable=disable, unit="step")
        window, valid, tick = [], {}, time.perf_counter()
        for s in range(start, cfg.steps):
            batch = self.exp.data.train_batch(s)
            key = jax.random.fold_in(keys, s)
            if mesh is not None:
                batch = parallel.shard_batch(batch, mesh)
                key = parallel.replicate(key, mesh)
            state, step_metrics = self.train_step(state, batch, key)
            window.append(step_metrics["loss"])
            bar.update(1)
            done = s + 1
            last = done == cfg.steps
            if done % cfg.log_every == 0 or last:
                loss = np.mean(jax.device_get(window))  # waits for the steps
                rate = len(window) / (time.perf_counter() - tick)
                values = {
                    "loss": loss,
                    "grad_norm": step_metrics["grad_norm"],
                    "learning_rate": self._learning_rate(done),
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
                valid = self.evaluate(state.params, "valid")
                writer.write(done, "valid", valid)
                bar.write(f"step {done}: valid {format_metrics(valid)}")
            if done % cfg.checkpoint_every == 0 or last:
                ckpts.save(done, state)
            if not window:
                tick = time.perf_counter()
        bar.close()
        if not valid:
            valid = self.evaluate(state.params, "valid")
        return state, valid

"""Jitted training and evaluation steps over Optax optimizers.

Contracts (all functions pure, all arrays JAX arrays):

- ``apply_fn(params, batch, key) -> outputs``: the model on a batch (any pytree);
  ``key`` is a PRNG key for dropout (``None`` in `make_eval_step`).
- ``loss_fn(outputs, batch) -> loss`` or ``-> (loss, count)`` (the losses of
  [`rnnjax.train.losses`][rnnjax.train.losses] return the pair); ``loss`` is a scalar.

Learning-rate schedules are passed to the optimizer itself, as Optax does:

    optimizer = optax.adam(rnnjax.train.schedule("cosine", 1e-3, 10_000, 500))

The schedule advances with the optimizer's own count, so skipped steps do not
advance it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from rnnjax.train import _update
from rnnjax.train.parallel import batch_sharding, check_mesh

__all__ = [
    "TrainState",
    "init_state",
    "make_eval_step",
    "make_train_step",
    "schedule",
    "sharded_objective",
]


class TrainState(NamedTuple):
    """The training state, a pytree.

    Attributes:
      step: number of steps taken (``int32``), skipped ones included; the number of
        updates applied is ``step - skipped``.
      params: the model parameters.
      opt_state: the optimizer's state (of ``optimizer`` itself: the clipping in
        front of it is stateless).
      skipped: number of steps skipped for a non-finite loss or gradient.
    """

    step: Any
    params: Any
    opt_state: Any
    skipped: Any


def init_state(params, optimizer: optax.GradientTransformation) -> TrainState:
    """A fresh `TrainState` for ``params`` and ``optimizer``."""
    zero = jnp.zeros((), jnp.int32)
    return TrainState(zero, params, optimizer.init(params), zero)


def _objective(apply_fn, loss_fn):
    """``(params, batch, key) -> (loss, count)`` for ``value_and_grad``."""

    def objective(params, batch, key):
        return _update.split_loss(loss_fn(apply_fn(params, batch, key), batch))

    return objective


def sharded_objective(apply_fn, loss_fn, mesh: Mesh):
    """``(params, batch, key) -> (loss, count)`` of the whole batch, evaluated
    slice by slice on ``mesh``'s devices by ``jax.shard_map``.

    Parameters and key are replicated, every batch leaf split along its leading
    axis over all of the mesh's axes (as `shard_batch` places
    it). Each device runs the model on its slice; the results combine as one
    device's would: with a ``count`` from ``loss_fn``, ``sum(loss_d * count_d) /
    sum(count_d)`` (the mean over every counted element); without one, the mean of
    the devices' losses (equal slices). On a CPU split into several devices this
    keeps each device's loop on its own core, which ``jit``'s automatic
    partitioning does not (``benchmarks/RESULTS.md``). Dropout: each device folds
    its index into ``key``, so masks differ from one device's draw.
    """
    weighted = _weighted_objective(apply_fn, loss_fn, mesh)

    def local(params, batch, key):
        _, (loss, count) = weighted(params, batch, key)
        return loss, count

    return _shard(local, mesh)


def _sharded_grad(apply_fn, loss_fn, mesh):
    """``value_and_grad`` of `sharded_objective` (``has_aux`` form)."""
    weighted = _weighted_objective(apply_fn, loss_fn, mesh)

    def local(params, batch, key):
        # The gradient w.r.t. the replicated params comes out summed over the
        # devices (JAX transposes their implicit broadcast into a psum); the
        # weights make that sum the whole batch's gradient.
        (_, totals), grads = jax.value_and_grad(weighted, has_aux=True)(
            params, batch, key
        )
        return totals, grads

    return _shard(local, mesh)


def _weighted_objective(apply_fn, loss_fn, mesh):
    """Per device: ``(weighted loss, (total loss, total count))``, the weighted
    losses summing over the devices to the total."""
    check_mesh(mesh)
    axes = tuple(mesh.axis_names)

    def weighted(params, batch, key):
        if key is not None and mesh.size > 1:
            key = jax.random.fold_in(key, lax.axis_index(axes))
        result = loss_fn(apply_fn(params, batch, key), batch)
        loss, count = _update.split_loss(result)
        if isinstance(result, tuple):
            total_count = lax.psum(count, axes)
            part = loss * count / total_count
            return part, (lax.psum(part, axes), total_count)
        part = loss / mesh.size
        return part, (lax.psum(part, axes), count)

    return weighted


def _shard(fn, mesh):
    """``fn(params, batch, key)`` under ``shard_map``: batch split, rest whole."""
    batch_spec = batch_sharding(mesh).spec
    return jax.shard_map(fn, mesh=mesh, in_specs=(P(), batch_spec, P()), out_specs=P())


def make_train_step(
    apply_fn,
    loss_fn,
    optimizer,
    *,
    clip_norm: float | None = 1.0,
    mesh: Mesh | None = None,
):
    """Builds a jitted pure training step ``(state, batch, key) -> (state, metrics)``.

    The gradient of ``loss_fn(apply_fn(params, batch, key), batch)`` is clipped to a
    global norm of at most ``clip_norm`` (``optax.clip_by_global_norm`` chained in
    front of ``optimizer``; ``None`` turns clipping off) and applied. A step whose
    loss or gradient is not finite is skipped: ``params`` and ``opt_state`` are
    kept unchanged and ``state.skipped`` counts it.

    Args:
      apply_fn: see the module docstring.
      loss_fn: as ``apply_fn``.
      optimizer: an ``optax.GradientTransformation``; initialise the state with
        [`init_state`][rnnjax.train.step.init_state] on the same optimizer.
      clip_norm: global-norm bound on the gradient, or ``None``.
      mesh: split the batch over this mesh's devices by hand (``jax.shard_map``;
        see `sharded_objective`); ``None``: the step follows the shardings
        of its inputs (``jit``'s automatic partitioning, see
        [`rnnjax.train.parallel`][rnnjax.train.parallel]).

    Returns:
      The step. ``metrics`` holds ``loss``, ``grad_norm`` (before clipping),
      ``skipped`` (a bool) and ``count`` (from ``loss_fn``, ``-1`` if it gives none).
    """
    tx, chained = _update.clipped(optimizer, clip_norm)
    if mesh is None:
        grad_fn = jax.value_and_grad(_objective(apply_fn, loss_fn), has_aux=True)
    else:
        grad_fn = _sharded_grad(apply_fn, loss_fn, mesh)

    @jax.jit
    def train_step(state: TrainState, batch, key):
        (loss, count), grads = grad_fn(state.params, batch, key)
        state, metrics = _update.guarded_update(tx, chained, state, loss, grads)
        return state, {**metrics, "count": count}

    return train_step


def make_eval_step(apply_fn, loss_fn, *, mesh: Mesh | None = None):
    """Builds a jitted ``(params, batch) -> metrics`` with ``loss`` and ``count``;
    ``apply_fn`` is called with ``key=None`` (no dropout). ``mesh``: as in
    [`make_train_step`][rnnjax.train.step.make_train_step]."""
    objective = _objective(apply_fn, loss_fn)
    if mesh is not None:
        objective = sharded_objective(apply_fn, loss_fn, mesh)

    @jax.jit
    def eval_step(params, batch):
        loss, count = objective(params, batch, None)
        return {"loss": loss, "count": count}

    return eval_step


def schedule(
    name: str,
    peak_value: float,
    total_steps: int,
    warmup_steps: int = 0,
    end_value: float = 0.0,
) -> optax.Schedule:
    """A learning-rate schedule by name, for ``optax.<optimizer>(schedule(...))``.

    Args:
      name: ``"constant"`` (linear warmup, then ``peak_value``), ``"linear"``
        (warmup, then linear decay to ``end_value`` at ``total_steps``) or
        ``"cosine"`` (warmup, then cosine decay to ``end_value``).
      peak_value: the learning rate after warmup.
      total_steps: length of the whole schedule, warmup included.
      warmup_steps: linear warmup from zero.
      end_value: the final rate of the decaying schedules.
    """
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(
            f"warmup_steps: expected an int in [0, total_steps={total_steps}], got "
            f"{warmup_steps}"
        )
    if name == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, peak_value, warmup_steps, total_steps, end_value
        )
    decay_steps = total_steps - warmup_steps
    if name == "linear":
        after = optax.linear_schedule(peak_value, end_value, max(decay_steps, 1))
    elif name == "constant":
        after = optax.constant_schedule(peak_value)
    else:
        raise ValueError(
            f"name: expected 'constant', 'linear' or 'cosine', got {name!r}"
        )
    if warmup_steps == 0:
        return after
    warmup = optax.linear_schedule(0.0, peak_value, warmup_steps)
    return optax.join_schedules([warmup, after], [warmup_steps])

"""Data parallelism over every device with ``jax.sharding``: the batch is split
along its leading axis, parameters and optimizer state are replicated.

The steps of `rnnjax.train` need no change: ``jit`` follows the shardings of
its inputs, so a step fed a sharded batch and a replicated state runs on every
device, all-reduces the gradient, and returns the state replicated and the loss
as the mean over the whole (global) batch, equal to one device's result up to
float32 rounding. The dropout key is the same on every device, and with JAX's
partitionable threefry (the default) every example draws the same mask as on one
device.

One host, many devices (GPUs, TPU cores):

    mesh = train.data_mesh()                       # all of jax.devices()
    state = train.replicate(train.init_state(params, optimizer), mesh)
    for batch in batches:                          # B divisible by the devices
        state, metrics = step(state, train.shard_batch(batch, mesh), key)

CPU devices (``jax_num_cpu_devices``, one per core): pass the mesh to the step
builders, ``make_train_step(..., mesh=mesh)`` / ``make_eval_step(..., mesh=mesh)``,
which split the batch by hand with ``jax.shard_map`` (each device its own loop, on
its own core). The automatic partitioning above gathers the batch around the
recurrent loop on the CPU and runs slower than one device (the `rnnjax` command's
step: 90 ms on one device, 76 with ``mesh=`` over two, 102 without;
``benchmarks/RESULTS.md``). With ``mesh=`` each device folds its index into the
dropout key, so dropout masks are not one device's.

Truncated BPTT: shard the carry like the batch (its leaves are ``(B, H)``), e.g.
``carry = train.shard_batch(model.initial_carry((B,)), mesh)``; the returned
carry stays sharded.

Several hosts: call ``jax.distributed.initialize()`` first in every process, then
build the mesh over all global devices (``data_mesh()`` does so) and run the same
program everywhere. Each process passes its own slice of the global batch to
`shard_batch` (``B / num_processes`` examples, divisible by its local device
count), which assembles one global array with
``jax.make_array_from_process_local_data``; `replicate` expects the same
values in every process (same seed), dropout keys may be passed as they are (the
same key in every process), and metrics come back as global replicated arrays
readable in every process.

Testing on a CPU: the number of host devices is fixed when JAX starts, so set
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (and
``JAX_PLATFORMS=cpu``) in the environment before Python imports JAX.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = ["batch_sharding", "data_mesh", "replicate", "shard_batch"]


def data_mesh(
    devices: Sequence[jax.Device] | None = None, *, axis_name: str = "data"
) -> Mesh:
    """A 1-D `jax.sharding.Mesh` named ``axis_name`` over ``devices``.

    Args:
      devices: the devices to split the batch over; ``None`` for
        ``jax.devices()`` (all local devices on one host, all global devices
        after ``jax.distributed.initialize()``).
      axis_name: the mesh axis the batch is sharded along.
    """
    if not isinstance(axis_name, str) or not axis_name:
        raise TypeError(f"axis_name: expected a non-empty str, got {axis_name!r}")
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices: expected at least one device, got none")
    for device in devices:
        if not isinstance(device, jax.Device):
            raise TypeError(
                f"devices: expected jax.Device objects, got {type(device).__name__}"
            )
    return Mesh(np.asarray(devices, dtype=object), (axis_name,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """``NamedSharding(mesh, P(axis))``: axis 0 split over every mesh device (over
    all of a multi-axis mesh's axes together)."""
    check_mesh(mesh)
    names = mesh.axis_names
    return NamedSharding(mesh, P(names[0] if len(names) == 1 else names))


def shard_batch(batch, mesh: Mesh):
    """Places every array leaf of ``batch`` split along its leading (batch) axis.

    Args:
      batch: a pytree of arrays (NumPy or JAX), each ``(B, ...)``. With one
        process ``B`` is the global batch; with several, this process's slice of
        it.
      mesh: from [`data_mesh`][rnnjax.train.parallel.data_mesh].

    Returns:
      The same pytree of ``jax.Array``s with `batch_sharding` (global
      ``(B * num_processes, ...)`` arrays when ``jax.process_count() > 1``).

    Raises:
      ValueError: before any transfer, if a leaf has no leading axis or a leading
        size not divisible by the number of devices it is split over.
    """
    sharding = batch_sharding(mesh)
    multi_process = jax.process_count() > 1
    num_devices = len(mesh.local_devices) if multi_process else mesh.size
    where = "local devices of this process" if multi_process else "devices"
    for path, leaf in jax.tree_util.tree_flatten_with_path(batch)[0]:
        shape = np.shape(leaf)
        if not shape or shape[0] % num_devices:
            raise ValueError(
                f"batch: expected every leaf to have a leading (batch) size "
                f"divisible by the {num_devices} {where} of the mesh, got leaf "
                f"{jax.tree_util.keystr(path) or '<root>'} of shape {tuple(shape)}"
                + ("" if not shape else f" (leading size {shape[0]})")
            )
    if multi_process:
        return jax.tree.map(
            lambda x: jax.make_array_from_process_local_data(sharding, x), batch
        )
    return jax.device_put(batch, sharding)


def replicate(tree, mesh: Mesh):
    """Places every leaf of ``tree`` (a [`TrainState`][rnnjax.train.TrainState], params,
    a key, ...) whole on every device of ``mesh``: ``NamedSharding(mesh, P())``.
    With several processes the leaves must hold the same values in each."""
    check_mesh(mesh)
    return jax.device_put(tree, NamedSharding(mesh, P()))


def check_mesh(mesh) -> None:
    """``TypeError`` naming ``mesh`` unless it is a ``jax.sharding.Mesh``."""
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"mesh: expected a jax.sharding.Mesh (from data_mesh()), got "
            f"{type(mesh).__name__}"
        )

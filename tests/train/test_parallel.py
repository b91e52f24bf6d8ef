"""Data parallelism (``rnnjax.train.parallel``): the multi-device checks run in
subprocesses (``tests/train/_parallel_worker.py``) with 4 forced CPU devices, and
with 2 processes of 2 devices each; in-process: argument errors and the one-device
mesh."""

import os
import pathlib
import socket
import subprocess
import sys
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from rnnjax import train
from tests.conftest import FAST_COMPILE, assert_close

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKER = "tests.train._parallel_worker"


def worker(*args):
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        **FAST_COMPILE,
        "XLA_FLAGS": "--xla_force_host_platform_device_count="
        + ("4" if args[0] == "single" else "2"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "-m", WORKER, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process, timeout=180):
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    print(output)
    return process.returncode, output


@pytest.mark.slow
def test_four_devices_equal_one_device():
    """Train steps (with dropout), eval and truncated BPTT sharded over 4 CPU
    devices equal the one-device run, on data_mesh() and under a context mesh of
    explicit axes (jax.make_mesh, jax.set_mesh); state replicated, batch and carry
    sharded 4 ways; an indivisible batch raises before any transfer."""
    returncode, output = finish(worker("single"))
    assert returncode == 0, output


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_feed_their_halves_of_the_batch():
    port = str(free_port())
    processes = [worker("multi", port, str(i)) for i in range(2)]
    results = [finish(p) for p in processes]
    for returncode, output in results:
        assert returncode == 0, output


# In process: one device, errors -------------------------------------------------


def apply_fn(params, batch, key):
    """A linear model: the step's sharding does not depend on the model."""
    return batch["x"] @ params["w"] + params["b"][None, None, :]


def loss_fn(outputs, batch):
    return train.mse(outputs, batch["y"])


def make_batch(seed, batch=4, steps=5):
    x = np.random.default_rng(seed).standard_normal((batch, steps, 3))
    return {"x": x.astype(np.float32), "y": np.cumsum(x, axis=1).astype(np.float32)}


def test_data_mesh_defaults_to_every_device():
    mesh = train.data_mesh()
    assert isinstance(mesh, Mesh) and mesh.axis_names == ("data",)
    assert list(mesh.devices) == jax.devices()


def test_one_device_mesh_step_equals_plain_step():
    mesh = train.data_mesh(jax.devices()[:1], axis_name="batch")
    assert mesh.shape == {"batch": 1}
    optimizer = optax.adam(1e-2)
    params = {"w": jnp.full((3, 3), 0.1), "b": jnp.zeros((3,))}
    state = train.init_state(params, optimizer)
    step = train.make_train_step(apply_fn, loss_fn, optimizer)
    batch = make_batch(0)
    sharded = train.shard_batch(batch, mesh)
    for leaf in jax.tree.leaves(sharded):
        assert leaf.sharding == NamedSharding(mesh, P("batch"))
    placed = train.replicate(state, mesh)
    for leaf in jax.tree.leaves(placed):
        assert leaf.sharding == NamedSharding(mesh, P())
    got, got_metrics = step(placed, sharded, None)
    want, want_metrics = step(state, batch, None)
    assert_close(got_metrics["loss"], want_metrics["loss"], "loss")
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert_close(g, w, "state")
        assert g.sharding.is_fully_replicated


class Batch(NamedTuple):
    inputs: Any
    mask: Any


def test_shard_batch_keeps_the_tree():
    mesh = train.data_mesh(jax.devices()[:1])
    batch = Batch(np.ones((2, 3, 1), np.float32), jnp.ones((2, 3), bool))
    sharded = train.shard_batch(batch, mesh)
    assert isinstance(sharded, Batch) and sharded.mask.dtype == jnp.bool_
    np.testing.assert_array_equal(sharded.inputs, batch.inputs)
    assert train.batch_sharding(mesh) == NamedSharding(mesh, P("data"))


def test_shard_batch_rejects_a_leaf_without_a_batch_axis():
    mesh = train.data_mesh(jax.devices()[:1])
    with pytest.raises(ValueError, match=r"batch: .*\['t'\] of shape \(\)"):
        train.shard_batch({"x": np.ones((2, 3)), "t": 1.0}, mesh)


@pytest.mark.parametrize("fn", [train.shard_batch, train.replicate])
def test_rejects_a_mesh_that_is_not_a_mesh(fn):
    with pytest.raises(TypeError, match=r"mesh: expected a jax\.sharding\.Mesh"):
        fn({"x": np.ones((2, 3))}, jax.devices())


def test_data_mesh_errors():
    with pytest.raises(ValueError, match="devices: expected at least one"):
        train.data_mesh([])
    with pytest.raises(
        TypeError, match=r"devices: expected jax\.Device objects, got str"
    ):
        train.data_mesh(["cpu:0"])
    with pytest.raises(TypeError, match="axis_name: expected a non-empty str"):
        train.data_mesh(axis_name=0)

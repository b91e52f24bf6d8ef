"""``rnnjax.unroll`` and stacks inside ``jax.shard_map`` (data parallelism with the
batch split by hand, the fast way to use several CPU devices; see
benchmarks/RESULTS.md): values and gradients equal to the plain call.

A one-device mesh here (the type rules that broke the loop carry, a zero carry
that varies over no mesh axis, are the same on one device);
tests/_explicit_sharding_worker.py runs the same over four CPU devices.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P

import rnnjax
from rnnjax.kernels import fused
from tests.conftest import randomize

B, T, I, H = 4, 6, 3, 5
LENGTHS = jnp.array([6, 1, 0, 4])
RESETS = jnp.array([[0, 0, 1, 0, 0, 0], [0] * 6, [0, 1, 0, 0, 0, 0], [0] * 6], bool)

U = rnnjax.UnrollOptions
CASES = {  # name: (cell, unroll keyword arguments)
    "lstm auto": (rnnjax.lstm(H), {}),
    "lstm fused, lengths, resets, reverse": (
        rnnjax.lstm(H, peephole=True),
        dict(
            options=U(impl="fused"),
            seq_lengths=LENGTHS,
            resets=RESETS,
            reverse=True,
        ),
    ),
    "lstm scan": (rnnjax.lstm(H), dict(options=U(impl="scan"), seq_lengths=LENGTHS)),
    "gru remat chunk": (rnnjax.gru(H), dict(options=U(remat="chunk", chunk_size=4))),
    "gru remat step": (rnnjax.gru(H), dict(options=U(remat="step"))),
    "min_gru associative": (rnnjax.min_gru(H), dict(seq_lengths=LENGTHS)),
    "clockwork": (rnnjax.clockwork_rnn(6, 3, (1, 2, 4)), {}),
}


def _mesh():
    return jax.make_mesh(
        (1,), ("data",), axis_types=(AxisType.Auto,), devices=jax.devices()[:1]
    )


def _sharded(f, mesh, n_batch_args):
    """``f(params, *batch_args)`` under shard_map: params replicated, the batch
    arguments and the outputs split along axis 0."""
    specs = (P(),) + (P("data"),) * n_batch_args
    return jax.shard_map(f, mesh=mesh, in_specs=specs, out_specs=P("data"))


def _loss_and_grads(f):
    """Loss and parameter gradients of a sum over ``f``'s outputs. Inside
    shard_map the gradient w.r.t. replicated parameters comes out summed over the
    mesh (JAX transposes their implicit broadcast into a ``psum``)."""

    def run(params, *args):
        loss = lambda p: sum(jnp.sum(jnp.sin(y)) for y in jax.tree.leaves(f(p, *args)))
        value, grads = jax.value_and_grad(loss)(params)
        return value, grads

    return run


def _assert_close(got, want):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_unroll_in_shard_map(name):
    cell, kwargs = CASES[name]
    params = randomize(cell.init(jax.random.key(0), I), scale=0.4)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    batch_kwargs = {k: v for k, v in kwargs.items() if k in ("seq_lengths", "resets")}
    other = {k: v for k, v in kwargs.items() if k not in batch_kwargs}
    names = sorted(batch_kwargs)

    def f(p, x, *batch):
        return rnnjax.unroll(
            cell, p, x, **other, **dict(zip(names, batch, strict=True))
        )

    args = (params, xs, *(batch_kwargs[n] for n in names))
    want = jax.jit(f)(*args), jax.jit(_loss_and_grads(f))(*args)
    mesh = _mesh()
    sharded = _sharded(f, mesh, 1 + len(names))

    def grads(p, *a):
        value, g = _loss_and_grads(f)(p, *a)
        return jax.lax.psum(value, "data"), g

    sharded_grads = jax.shard_map(
        grads,
        mesh=mesh,
        in_specs=(P(),) + (P("data"),) * (1 + len(names)),
        out_specs=P(),
    )
    got = jax.jit(sharded)(*args), jax.jit(sharded_grads)(*args)
    _assert_close(got, want)


def test_stack_and_chunked_projection_in_shard_map(monkeypatch):
    """A bidirectional two-layer stack with lengths, and the fused kernel's
    projection in chunks (forced at this size)."""
    monkeypatch.setattr(fused, "projection_chunk", lambda *_: 4)
    model = rnnjax.stack(rnnjax.lstm(H), 2, bidirectional=True)
    params = model.init(jax.random.key(2), I)
    xs = jax.random.normal(jax.random.key(3), (B, T, I))
    f = lambda p, x, n: model.apply(p, x, seq_lengths=n)[1]
    want = jax.jit(f)(params, xs, LENGTHS)
    got = jax.jit(_sharded(f, _mesh(), 2))(params, xs, LENGTHS)
    _assert_close(got, want)


DOC = Path(__file__).resolve().parents[1] / "docs" / "kernels.md"
CHECK_RECIPE = """
import numpy as np
params = cell.init(jax.random.key(0), 8)
xs = jax.random.normal(jax.random.key(1), (4, 5, 8))
want = jax.jit(jax.grad(loss))(params, xs)  # the whole batch, one device
got = grads(params, xs)
assert len(jax.devices()) == 2
for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
print("recipe ok")
"""


def test_documented_cpu_recipe():
    """The two-device recipe of docs/kernels.md runs as written (its own process:
    it sets the device count before JAX starts) and its gradient equals the
    whole batch's on one device."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    (recipe,) = [b for b in blocks if "jax_num_cpu_devices" in b]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", recipe + CHECK_RECIPE],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "recipe ok" in done.stdout

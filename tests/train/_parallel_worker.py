"""Runs in a subprocess started by ``test_parallel.py`` (the host device count is
fixed when JAX starts). Raises on any mismatch; prints the numbers it compared.

    python -m tests.train._parallel_worker single            # 4 CPU devices
    python -m tests.train._parallel_worker multi PORT PID    # 2 processes x 2
"""

import os
import sys

MODE = sys.argv[1]
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=" + (
    "4" if MODE == "single" else "2"
)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import rnnjax  # noqa: E402
from rnnjax import train  # noqa: E402
from tests.conftest import randomize, rel_err  # noqa: E402 (rank promotion: raise)

B, T, H, STEPS, K = 8, 6, 8, 4, 3
# Two layers with dropout between them: the sharded step must draw the same mask.
MODEL = rnnjax.stack(rnnjax.lstm(H), input_dropout=0.25)
OPTIMIZER = optax.adam(1e-2)


def init_params():
    """Random values in the init's shapes (no compile of the initialisers)."""
    shapes = jax.eval_shape(lambda: MODEL.init(jax.random.key(0), 1))
    shapes = {"rnn": shapes, "w": jnp.zeros((H, 1)), "b": jnp.zeros((1,))}
    return randomize(shapes, scale=0.3)


def readout(params, ys):
    return ys @ params["w"] + params["b"][None, None, :]


def apply_fn(params, batch, key):
    _, ys = MODEL.apply(params["rnn"], batch["x"], key=key, training=key is not None)
    return readout(params, ys)


def tbptt_apply(params, xs, carry, key):
    carry, ys = MODEL.apply(
        params["rnn"], xs["x"], carry=carry, key=key, training=key is not None
    )
    return carry, readout(params, ys)


def loss_fn(outputs, batch):
    return train.mse(outputs, batch["y"])


def make_batch(seed, batch=B):
    """Host NumPy ``(B, T, 1)`` inputs; targets their running mean."""
    x = np.random.default_rng(seed).standard_normal((batch, T, 1)).astype(np.float32)
    return {"x": x, "y": np.cumsum(x, axis=1) / np.arange(1, T + 1)[:, None]}


def train_losses(state, batches, place):
    step = train.make_train_step(apply_fn, loss_fn, OPTIMIZER)
    losses = []
    for i, batch in enumerate(batches):
        state, metrics = step(state, place(batch), jax.random.key(i))
        losses.append(float(metrics["loss"]))
    return state, losses, metrics


def assert_replicated(tree, what):
    for leaf in jax.tree.leaves(tree):
        assert leaf.sharding.is_fully_replicated, (what, leaf.sharding)
        # P() on an Auto mesh; P(None, ...) under an explicit one
        assert all(axis is None for axis in leaf.sharding.spec), (what, leaf.sharding)


def assert_batch_sharded(tree, mesh, what):
    for leaf in jax.tree.leaves(tree):
        spec = tuple(leaf.sharding.spec)  # P("data") or P("data", None, ...)
        assert spec[0] == "data" and all(a is None for a in spec[1:]), (what, spec)
        shard_rows = {s.data.shape[0] for s in leaf.addressable_shards}
        assert shard_rows == {leaf.shape[0] // mesh.size}, (what, shard_rows)


def assert_trees_close(got, want, what, tol=1e-5):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        err = rel_err(g, w)
        assert err < tol, f"{what}: relative error {err:.3g}"


def check_train_step(mesh):
    batches = [make_batch(seed) for seed in range(STEPS)]
    state = train.init_state(init_params(), OPTIMIZER)
    want, want_losses, _ = train_losses(state, batches, lambda b: b)
    got, got_losses, metrics = train_losses(
        train.replicate(state, mesh), batches, lambda b: train.shard_batch(b, mesh)
    )
    np.testing.assert_allclose(got_losses, want_losses, rtol=1e-5)
    assert_trees_close(got.params, want.params, "params")
    assert_trees_close(got.opt_state, want.opt_state, "opt_state")
    assert_replicated(got, "state")
    assert_replicated(metrics, "metrics")
    assert int(metrics["count"]) == B * T, int(metrics["count"])  # global, not shard
    err = max(rel_err(g, w) for g, w in zip(got_losses, want_losses, strict=True))
    print(f"train losses {np.round(got_losses, 5).tolist()}: max rel err {err:.2g}")
    return got


def check_eval_step(mesh, params):
    evaluate = train.make_eval_step(apply_fn, loss_fn)
    batch = make_batch(100)
    want = evaluate(params, batch)
    got = evaluate(train.replicate(params, mesh), train.shard_batch(batch, mesh))
    np.testing.assert_allclose(float(got["loss"]), float(want["loss"]), rtol=1e-5)
    assert_replicated(got, "eval metrics")


def check_tbptt_step(mesh):
    step = train.make_tbptt_step(tbptt_apply, loss_fn, OPTIMIZER, chunk_size=K)
    state = train.init_state(init_params(), OPTIMIZER)
    batch, carry, key = make_batch(7), MODEL.initial_carry((B,)), jax.random.key(3)
    want_state, want_carry, want_metrics = step(state, batch, carry, key)
    sharded_carry = train.shard_batch(carry, mesh)
    assert_batch_sharded(sharded_carry, mesh, "carry in")
    got_state, got_carry, got_metrics = step(
        train.replicate(state, mesh), train.shard_batch(batch, mesh), sharded_carry, key
    )
    np.testing.assert_allclose(got_metrics["loss"], want_metrics["loss"], rtol=1e-5)
    assert_trees_close(got_state.params, want_state.params, "tbptt params")
    assert_trees_close(got_carry, want_carry, "tbptt carry")
    assert_replicated(got_state, "tbptt state")
    assert_batch_sharded(got_carry, mesh, "carry out")
    print(f"tbptt chunk losses {np.round(np.asarray(got_metrics['loss']), 5)}")


def check_shard_map_steps(mesh):
    """``make_train_step(..., mesh=)`` / ``make_eval_step(..., mesh=)``: the batch
    split by shard_map. Without dropout (key None) equal to one device, with a
    counted loss and with a plain mean; with dropout, each device its own masks."""
    batches = [make_batch(seed) for seed in range(STEPS)]
    plain_mean = lambda outputs, batch: jnp.mean((outputs - batch["y"]) ** 2)
    for loss in (loss_fn, plain_mean):
        state = train.init_state(init_params(), OPTIMIZER)
        one = train.make_train_step(apply_fn, loss, OPTIMIZER)
        split = train.make_train_step(apply_fn, loss, OPTIMIZER, mesh=mesh)
        want, got = state, train.replicate(state, mesh)
        for batch in batches:
            want, want_metrics = one(want, batch, None)
            got, metrics = split(got, train.shard_batch(batch, mesh), None)
            np.testing.assert_allclose(
                float(metrics["loss"]), float(want_metrics["loss"]), rtol=1e-5
            )
            assert int(metrics["count"]) == int(want_metrics["count"])
        assert_trees_close(got.params, want.params, "shard_map params")
        assert_replicated(got, "shard_map state")
        evaluate = train.make_eval_step(apply_fn, loss, mesh=mesh)
        got_eval = evaluate(got.params, train.shard_batch(batches[0], mesh))
        want_eval = train.make_eval_step(apply_fn, loss)(want.params, batches[0])
        np.testing.assert_allclose(
            float(got_eval["loss"]), float(want_eval["loss"]), rtol=1e-5
        )
    # Dropout: the key folded with each device's index, so not one device's masks.
    state = train.init_state(init_params(), OPTIMIZER)
    split = train.make_train_step(apply_fn, loss_fn, OPTIMIZER, mesh=mesh)
    one = train.make_train_step(apply_fn, loss_fn, OPTIMIZER)
    key = jax.random.key(5)
    _, metrics = split(
        train.replicate(state, mesh), train.shard_batch(batches[0], mesh), key
    )
    _, want_metrics = one(state, batches[0], key)
    assert np.isfinite(float(metrics["loss"]))
    assert float(metrics["loss"]) != float(want_metrics["loss"])
    print(
        "shard_map steps equal to one device; dropout loss",
        round(float(metrics["loss"]), 5),
    )


def check_errors(mesh):
    put = jax.device_put
    calls = []
    jax.device_put = lambda *a, **k: calls.append(a) or put(*a, **k)
    try:
        bad = {"x": np.zeros((B, T, 1), np.float32), "y": np.zeros((6, T, 1))}
        try:
            train.shard_batch(bad, mesh)
        except ValueError as e:
            message = str(e)
        else:
            raise AssertionError("shard_batch accepted a batch of 6 on 4 devices")
    finally:
        jax.device_put = put
    for part in ("batch:", "4 devices", "leading size 6", "['y']"):
        assert part in message, (part, message)
    assert not calls, "shard_batch transferred before raising"
    print(f"error: {message}")


def single():
    mesh = train.data_mesh()
    assert mesh.size == 4 and mesh.axis_names == ("data",), mesh
    batch = train.shard_batch(make_batch(0), mesh)
    assert_batch_sharded(batch, mesh, "batch")
    state = check_train_step(mesh)
    check_eval_step(mesh, state.params)
    check_tbptt_step(mesh)
    check_shard_map_steps(mesh)
    check_errors(mesh)
    # The same steps under a mesh of explicit axes (jax.make_mesh's default),
    # set as the context mesh: the sharding is then part of the arrays' types.
    explicit = jax.make_mesh((4,), ("data",))
    assert explicit.axis_types == (jax.sharding.AxisType.Explicit,), explicit
    with jax.set_mesh(explicit):
        state = check_train_step(explicit)
        check_eval_step(explicit, state.params)
        check_tbptt_step(explicit)


def multi(port, process_id):
    """Two processes, each feeding its half of the global batch."""
    jax.distributed.initialize(
        f"localhost:{port}", 2, process_id, initialization_timeout=60
    )
    try:
        mesh = train.data_mesh()
        assert mesh.size == 4 and len(mesh.local_devices) == 2, mesh
        half = slice(process_id * B // 2, (process_id + 1) * B // 2)
        state = train.init_state(init_params(), OPTIMIZER)
        batches = [make_batch(seed) for seed in range(2)]
        want, want_losses, _ = train_losses(state, batches, lambda b: b)
        got, got_losses, metrics = train_losses(
            train.replicate(state, mesh),
            batches,
            lambda b: train.shard_batch(jax.tree.map(lambda a: a[half], b), mesh),
        )
        np.testing.assert_allclose(got_losses, want_losses, rtol=1e-5)
        assert int(metrics["count"]) == B * T, int(metrics["count"])
        assert_replicated(got, "state")
        local = jax.tree.map(lambda a: a.addressable_data(0), got.params)
        assert_trees_close(local, want.params, "params")
        print(f"process {process_id}: losses {np.round(got_losses, 5).tolist()}")
    finally:
        jax.distributed.shutdown()


if __name__ == "__main__":
    if MODE == "single":
        single()
    else:
        multi(int(sys.argv[2]), int(sys.argv[3]))

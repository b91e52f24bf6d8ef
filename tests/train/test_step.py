"""Training steps: learning, skipping non-finite steps, clipping, no recompiles,
truncated BPTT against a hand-written loop over chunks."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rnnjax
from rnnjax import train

# Their time is compiling small programs: XLA's cheaper passes (conftest).
pytestmark = pytest.mark.usefixtures("fast_compile")

B, T, H = 16, 8, 16
MODEL = rnnjax.stack(rnnjax.lstm(H))


def init_params(seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {
        "rnn": MODEL.init(k1, 1),
        "w": 0.3 * jax.random.normal(k2, (H, 1)),
        "b": jnp.zeros((1,)),
    }


def readout(params, ys):
    return ys @ params["w"] + params["b"][None, None, :]


def apply_fn(params, batch, key):
    _, ys = MODEL.apply(params["rnn"], batch["x"])
    return readout(params, ys)


def loss_fn(outputs, batch):
    return train.mse(outputs, batch["y"])


def running_mean_batch(seed, batch=B, steps=T):
    """Inputs ``(B, T, 1)``; targets the running mean of the inputs."""
    x = np.random.default_rng(seed).standard_normal((batch, steps, 1))
    y = np.cumsum(x, axis=1) / np.arange(1, steps + 1)[:, None]
    return {"x": jnp.asarray(x, jnp.float32), "y": jnp.asarray(y, jnp.float32)}


def leaves_equal(a, b):
    return all(
        np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def assert_trees_close(got, want):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)


def test_learns_running_mean():
    optimizer = optax.adam(train.schedule("cosine", 2e-2, 200, warmup_steps=10))
    step = train.make_train_step(apply_fn, loss_fn, optimizer)
    evaluate = train.make_eval_step(apply_fn, loss_fn)
    state = train.init_state(init_params(), optimizer)
    batches = [running_mean_batch(seed) for seed in range(8)]
    held_out = running_mean_batch(100, batch=64)
    initial = float(evaluate(state.params, held_out)["loss"])
    key = jax.random.key(1)
    for i in range(200):
        state, metrics = step(state, batches[i % 8], jax.random.fold_in(key, i))
    final = float(evaluate(state.params, held_out)["loss"])
    assert int(state.step) == 200 and int(state.skipped) == 0
    print(f"held-out loss {initial:.4f} -> {final:.4f}")
    assert final < 0.1 * initial, (initial, final)
    assert int(metrics["count"]) == B * T


def nan_batch():
    batch = running_mean_batch(0)
    return {**batch, "x": batch["x"].at[3, 2, 0].set(jnp.nan)}


@pytest.mark.parametrize("clip_norm", [1.0, None])
def test_nan_batch_is_skipped_and_counted(clip_norm):
    optimizer = optax.adam(1e-2)
    step = train.make_train_step(apply_fn, loss_fn, optimizer, clip_norm=clip_norm)
    state = train.init_state(init_params(), optimizer)
    key = jax.random.key(0)
    state, _ = step(state, running_mean_batch(1), key)  # a non-trivial opt_state
    before = state
    state, metrics = step(state, nan_batch(), key)
    assert bool(metrics["skipped"]) and not np.isfinite(float(metrics["loss"]))
    assert int(state.skipped) == 1 and int(state.step) == 2
    assert leaves_equal(state.params, before.params)
    assert leaves_equal(state.opt_state, before.opt_state)
    state, metrics = step(state, running_mean_batch(2), key)
    assert not bool(metrics["skipped"]) and int(state.skipped) == 1
    assert not leaves_equal(state.params, before.params)


def test_non_finite_gradient_with_finite_loss_is_skipped():
    optimizer = optax.sgd(0.1)
    step = train.make_train_step(
        lambda p, b, k: jnp.sqrt(p["w"]), lambda out, b: out, optimizer
    )
    params = {"w": jnp.zeros(())}
    state, metrics = step(train.init_state(params, optimizer), {}, None)
    assert float(metrics["loss"]) == 0.0 and bool(metrics["skipped"])
    assert int(state.skipped) == 1 and leaves_equal(state.params, params)


@pytest.mark.parametrize("clip_norm", [0.05, None])
def test_clipping_bounds_the_update(clip_norm):
    params, batch = init_params(), running_mean_batch(3)
    optimizer = optax.sgd(1.0)
    step = train.make_train_step(apply_fn, loss_fn, optimizer, clip_norm=clip_norm)
    state, metrics = step(train.init_state(params, optimizer), batch, None)

    grads = jax.jit(jax.grad(lambda p: loss_fn(apply_fn(p, batch, None), batch)[0]))(
        params
    )
    norm = float(optax.tree.norm(grads))
    np.testing.assert_allclose(float(metrics["grad_norm"]), norm, rtol=1e-5)
    if clip_norm is not None:
        assert norm > clip_norm  # the test exercises clipping
        grads, _ = optax.clip_by_global_norm(clip_norm).update(grads, None)
    applied = jax.tree.map(jnp.subtract, state.params, params)
    bound = norm if clip_norm is None else clip_norm
    assert float(optax.tree.norm(applied)) <= bound * (1 + 1e-5)
    for got, want in zip(jax.tree.leaves(applied), jax.tree.leaves(grads), strict=True):
        np.testing.assert_allclose(got, -want, rtol=1e-4, atol=1e-7)


def test_second_call_does_not_recompile():
    optimizer = optax.adam(1e-3)
    step = train.make_train_step(apply_fn, loss_fn, optimizer)
    evaluate = train.make_eval_step(apply_fn, loss_fn)
    state = train.init_state(init_params(), optimizer)
    for seed in range(3):
        state, _ = step(state, running_mean_batch(seed), jax.random.key(seed))
        evaluate(state.params, running_mean_batch(seed))
    assert step._cache_size() == 1
    assert evaluate._cache_size() == 1


def test_eval_step_matches_direct_loss():
    params, batch = init_params(), running_mean_batch(4)
    metrics = train.make_eval_step(apply_fn, loss_fn)(params, batch)
    loss, count = loss_fn(apply_fn(params, batch, None), batch)
    np.testing.assert_allclose(float(metrics["loss"]), float(loss), rtol=1e-6)
    assert int(metrics["count"]) == int(count)


# Truncated BPTT ------------------------------------------------------------------


def tbptt_apply(params, xs, carry, key):
    carry, ys = MODEL.apply(params["rnn"], xs["x"], carry=carry)
    return carry, readout(params, ys)


def test_tbptt_equals_manual_loop_over_chunks():
    K, num_chunks, clip_norm = 4, 3, 0.5
    batch = running_mean_batch(5, batch=4, steps=K * num_chunks)
    params = init_params()
    optimizer = optax.adam(1e-2)
    carry0 = MODEL.initial_carry((4,))
    key = jax.random.key(7)

    step = train.make_tbptt_step(
        tbptt_apply, loss_fn, optimizer, chunk_size=K, clip_norm=clip_norm
    )
    state = train.init_state(params, optimizer)
    state, carry, metrics = step(state, batch, carry0, key)

    tx = optax.chain(optax.clip_by_global_norm(clip_norm), optimizer)
    p, opt_state, c, losses = params, tx.init(params), carry0, []

    def chunk_loss(p, xs, c):
        c, out = tbptt_apply(p, xs, c, None)
        return loss_fn(out, xs)[0], c

    grad_fn = jax.jit(jax.value_and_grad(chunk_loss, has_aux=True))
    for i in range(num_chunks):
        xs = jax.tree.map(lambda a, i=i: a[:, i * K : (i + 1) * K], batch)
        (loss, c), grads = grad_fn(p, xs, jax.lax.stop_gradient(c))
        updates, opt_state = tx.update(grads, opt_state, p)
        p = optax.apply_updates(p, updates)
        losses.append(float(loss))

    assert metrics["loss"].shape == (num_chunks,)
    np.testing.assert_allclose(np.asarray(metrics["loss"]), losses, rtol=1e-5)
    assert int(state.step) == num_chunks and int(state.skipped) == 0
    assert_trees_close(state.params, p)
    assert_trees_close(carry, c)


def test_tbptt_with_one_chunk_equals_train_step():
    batch, params, optimizer = running_mean_batch(6), init_params(), optax.adam(1e-2)
    state = train.init_state(params, optimizer)
    tbptt = train.make_tbptt_step(tbptt_apply, loss_fn, optimizer, chunk_size=T)
    got, _, got_metrics = tbptt(state, batch, MODEL.initial_carry((B,)), None)
    step = train.make_train_step(apply_fn, loss_fn, optimizer)
    want, want_metrics = step(state, batch, None)
    assert_trees_close(got.params, want.params)
    np.testing.assert_allclose(got_metrics["loss"][0], want_metrics["loss"], rtol=1e-6)


def test_tbptt_skips_a_non_finite_chunk_and_keeps_its_carry():
    K = 4
    batch = running_mean_batch(8, batch=2, steps=3 * K)
    batch = {**batch, "x": batch["x"].at[0, K + 1, 0].set(jnp.inf)}
    optimizer = optax.adam(1e-2)
    step = train.make_tbptt_step(tbptt_apply, loss_fn, optimizer, chunk_size=K)
    state = train.init_state(init_params(), optimizer)
    state, carry, metrics = step(state, batch, MODEL.initial_carry((2,)), None)
    np.testing.assert_array_equal(np.asarray(metrics["skipped"]), [False, True, False])
    assert int(state.skipped) == 1 and int(state.step) == 3
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(carry))
    assert all(
        np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(state.params)
    )


def test_tbptt_rejects_ragged_chunks():
    optimizer = optax.sgd(1.0)
    step = train.make_tbptt_step(tbptt_apply, loss_fn, optimizer, chunk_size=3)
    state = train.init_state(init_params(), optimizer)
    with pytest.raises(ValueError, match="divisible by chunk_size=3"):
        step(state, running_mean_batch(0), MODEL.initial_carry((B,)), None)


def test_schedule():
    s = train.schedule("linear", 1.0, 10, warmup_steps=2, end_value=0.2)
    np.testing.assert_allclose([float(s(i)) for i in (0, 1, 2, 10)], [0, 0.5, 1, 0.2])
    s = train.schedule("cosine", 1.0, 10, warmup_steps=0)
    np.testing.assert_allclose([float(s(0)), float(s(10))], [1.0, 0.0], atol=1e-7)
    assert float(train.schedule("constant", 0.3, 10)(7)) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="name:"):
        train.schedule("step", 1.0, 10)


def test_import_rnnjax_does_not_import_train_or_optax():
    code = (
        "import sys, rnnjax; "
        "assert 'optax' not in sys.modules and 'rnnjax.train' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sharded_steps_on_one_device_equal_the_plain_steps():
    """``mesh=`` on a one-device mesh (tests/train/_parallel_worker.py runs four):
    the same losses, parameters and evaluation, and the same dropout draw (a
    one-device mesh folds nothing into the key)."""
    mesh = train.data_mesh(jax.devices()[:1])
    optimizer = optax.adam(1e-2)
    model = rnnjax.stack(rnnjax.lstm(H), input_dropout=0.2)

    def apply(params, batch, key):
        _, ys = model.apply(
            params["rnn"], batch["x"], key=key, training=key is not None
        )
        return readout(params, ys)

    params = {**init_params(), "rnn": model.init(jax.random.key(3), 1)}
    plain = train.make_train_step(apply, loss_fn, optimizer)
    sharded = train.make_train_step(apply, loss_fn, optimizer, mesh=mesh)
    want = got = train.init_state(params, optimizer)
    for i in range(3):
        batch, key = running_mean_batch(i), jax.random.key(i)
        want, want_metrics = plain(want, batch, key)
        got, metrics = sharded(got, batch, key)
        np.testing.assert_allclose(metrics["loss"], want_metrics["loss"], rtol=1e-6)
        assert int(metrics["count"]) == int(want_metrics["count"]) == B * T
    assert_trees_close(got.params, want.params)
    evaluate = train.make_eval_step(apply, loss_fn, mesh=mesh)
    np.testing.assert_allclose(
        evaluate(got.params, batch)["loss"],
        train.make_eval_step(apply, loss_fn)(got.params, batch)["loss"],
        rtol=1e-6,
    )


def test_sharded_steps_reject_a_non_mesh_before_compute():
    for make in (
        lambda: train.make_train_step(apply_fn, loss_fn, optax.sgd(0.1), mesh="data"),
        lambda: train.make_eval_step(apply_fn, loss_fn, mesh=jax.devices()),
    ):
        with pytest.raises(TypeError, match=r"mesh: expected a jax\.sharding\.Mesh"):
            make()

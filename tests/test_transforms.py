"""Every cell under jit, grad, vmap, jvp and checkpoint; bfloat16 compute; no
recompilation on a second call."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from tests.conftest import randomize

# Their time is compiling small programs: XLA's cheaper passes (conftest).
pytestmark = pytest.mark.usefixtures("fast_compile")

H, INPUT = 4, 4
CELLS = {
    "simple_rnn": lambda **kw: rnnjax.simple_rnn(H, **kw),
    "lstm": lambda **kw: rnnjax.lstm(H, **kw),
    "lstm_all": lambda **kw: rnnjax.lstm(
        H, peephole=True, layer_norm=True, full_gate_recurrence=True, **kw
    ),
    "lstmp": lambda **kw: rnnjax.lstm(H, proj_size=2, **kw),
    "gru": lambda **kw: rnnjax.gru(H, **kw),
    "gru_cho": lambda **kw: rnnjax.gru(H, reset_after=False, **kw),
    "mgu": lambda **kw: rnnjax.mgu(H, **kw),
    "mut1": lambda **kw: rnnjax.mut1(H, **kw),
    "mut2": lambda **kw: rnnjax.mut2(H, **kw),
    "mut3": lambda **kw: rnnjax.mut3(H, **kw),
}


def setup(name, **kw):
    cell = CELLS[name](**kw)
    params = randomize(cell.init(jax.random.key(0), INPUT), scale=0.4)
    xs = jax.random.normal(jax.random.key(1), (2, 5, INPUT))
    lengths = jnp.array([5, 3])
    return cell, params, xs, lengths


def loss_fn(cell, lengths):
    def loss(params, xs):
        carry, ys = rnnjax.unroll(cell, params, xs, seq_lengths=lengths)
        return jnp.sum(ys * ys) + sum(jnp.sum(c) for c in jax.tree.leaves(carry))

    return loss


def tree_dot(a, b):
    return sum(
        jnp.vdot(x, y)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@pytest.mark.parametrize("name", sorted(CELLS))
def test_jit_equals_eager(name):
    cell, params, xs, lengths = setup(name)
    f = lambda p, x: rnnjax.unroll(cell, p, x, seq_lengths=lengths)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        f(params, xs),
        jax.jit(f)(params, xs),
    )


@pytest.mark.parametrize("name", sorted(CELLS))
def test_jvp_agrees_with_vjp(name):
    """<J v, u> = <v, J^T u>: forward and reverse mode are consistent."""
    cell, params, xs, lengths = setup(name)
    f = jax.jit(lambda p, x: rnnjax.unroll(cell, p, x, seq_lengths=lengths))
    v = (randomize(params, 7), jax.random.normal(jax.random.key(8), xs.shape))
    out, jv = jax.jvp(f, (params, xs), v)
    u = randomize(out, 9)
    _, vjp = jax.vjp(f, params, xs)
    lhs, rhs = tree_dot(jv, u), tree_dot(v, vjp(u))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_grad_against_finite_differences(name):
    cell, params, xs, lengths = setup(name)
    loss = jax.jit(loss_fn(cell, lengths))
    grads = jax.jit(jax.grad(loss))(params, xs)
    direction = randomize(params, 11)
    eps = 1e-2
    plus = jax.tree.map(lambda p, d: p + eps * d, params, direction)
    minus = jax.tree.map(lambda p, d: p - eps * d, params, direction)
    numeric = (loss(plus, xs) - loss(minus, xs)) / (2 * eps)
    np.testing.assert_allclose(
        tree_dot(grads, direction), numeric, rtol=2e-2, atol=1e-2
    )


@pytest.mark.parametrize("name", ["lstm", "gru", "gru_cho", "mut3"])
def test_vmap_over_batch_equals_batched(name):
    cell, params, xs, lengths = setup(name)
    one = lambda x, n: rnnjax.unroll(cell, params, x, seq_lengths=n)
    mapped = jax.vmap(one)(xs, lengths)
    batched = one(xs, lengths)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        mapped,
        batched,
    )
    per_param = jax.vmap(lambda p: rnnjax.unroll(cell, p, xs)[1])(
        jax.tree.map(lambda a: jnp.stack([a, 2 * a]), params)
    )
    np.testing.assert_allclose(
        per_param[1],
        rnnjax.unroll(cell, jax.tree.map(lambda a: 2 * a, params), xs)[1],
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("name", ["lstm", "gru_cho"])
def test_checkpoint_gives_the_same_gradients(name):
    cell, params, xs, lengths = setup(name)
    loss = loss_fn(cell, lengths)
    plain = jax.grad(loss)(params, xs)
    remat = jax.grad(jax.checkpoint(loss))(params, xs)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        plain,
        remat,
    )


@pytest.mark.parametrize(
    "name", ["simple_rnn", "lstm", "lstm_all", "gru", "gru_cho", "mgu", "mut3"]
)
def test_bfloat16_compute_with_float32_params_and_state(name):
    cell32, params, xs, lengths = setup(name)
    cell16 = CELLS[name](dtype=jnp.bfloat16)
    carry16, ys16 = rnnjax.unroll(
        cell16, params, xs.astype(jnp.bfloat16), seq_lengths=lengths
    )
    _, ys32 = rnnjax.unroll(cell32, params, xs, seq_lengths=lengths)
    assert all(c.dtype == jnp.float32 for c in jax.tree.leaves(carry16))
    np.testing.assert_allclose(np.asarray(ys16, np.float32), ys32, atol=5e-2)
    grads = jax.grad(loss_fn(cell16, lengths))(params, xs.astype(jnp.bfloat16))
    for g in jax.tree.leaves(grads):
        assert g.dtype == jnp.float32 and np.all(np.isfinite(g))


@pytest.mark.parametrize("name", ["lstm", "gru_cho"])
def test_second_call_does_not_recompile(name):
    cell, params, xs, lengths = setup(name)
    traces = []

    @jax.jit
    def step(p, x, n):
        traces.append(1)
        return jax.value_and_grad(loss_fn(cell, n))(p, x)

    step(params, xs, lengths)
    step(randomize(params, 3), xs + 1.0, lengths - 1)
    assert len(traces) == 1
    # A fresh but equal cell object is the same static configuration.
    assert CELLS[name]() == cell and hash(CELLS[name]()) == hash(cell)

"""Clockwork RNN (Koutnik et al. 2014) against a float64 NumPy implementation.

The paper's step, with modules ordered fastest first and ``m = H / g`` units each::

    a     = x W_x + b + h W          W (H, H): block (j, i) zero unless j >= i
    h'_i  = tanh(a_i)   if t mod T_i == 0   else h_i

The reference builds the full masked ``W`` from the stored blocks (block ``(j, i)``
of ``W`` is rows ``(j - i) m : (j - i + 1) m`` of ``w_h[i]``) and checks that it is
block triangular, so the stored layout and the slow-to-fast direction are both
tested.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax.cells.clockwork import ClockworkState, clockwork_rnn
from tests.cells import _reference as ref
from tests.conftest import randomize

# Their time is compiling small programs: XLA's cheaper passes (conftest).
pytestmark = pytest.mark.usefixtures("fast_compile")

I, H, G = 3, 6, 3
M = H // G
NUM_STEPS = 9
PERIODS = {"default": None, "custom": (1, 3, 4), "slow_first": (2, 3, 5)}


def full_matrix(w_h, g, m):
    """The ``(H, H)`` matrix of ``h @ W`` from the per-module blocks."""
    w = np.zeros((g * m, g * m))
    for i in range(g):
        assert w_h[i].shape == ((g - i) * m, m)
        for j in range(i, g):
            w[j * m : (j + 1) * m, i * m : (i + 1) * m] = w_h[i][
                (j - i) * m : (j - i + 1) * m
            ]
    return w


def reference_step(periods, m, act=np.tanh):
    unit_periods = np.repeat(np.asarray(periods), m)  # (H,)

    def step(p, carry, x, rec_mask=None):
        t, h = carry
        w = full_matrix(p["w_h"], len(periods), m)
        operand = h if rec_mask is None else h * rec_mask
        cand = act(x @ p["w_x"] + p["b"] + operand @ w)
        active = (t[..., None] % unit_periods) == 0
        h = np.where(active, cand, h)
        return (t + 1, h), h

    return step


def setup(cell, batch_shape, seed=0, t0=0):
    params = randomize(cell.init(jax.random.key(seed), I), seed)
    rng = np.random.default_rng(seed + 1)
    h0 = rng.standard_normal((*batch_shape, H)).astype(np.float32)
    carry = ClockworkState(jnp.full(batch_shape, t0, jnp.int32), jnp.asarray(h0))
    xs = rng.standard_normal((NUM_STEPS, *batch_shape, I)).astype(np.float32)
    return params, carry, jnp.asarray(xs)


def to64(params):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), params)


@pytest.mark.parametrize("skip", [True, False], ids=["skip", "noskip"])
@pytest.mark.parametrize("batch_shape", [(), (2,)], ids=["unbatched", "B2"])
@pytest.mark.parametrize("periods", list(PERIODS))
def test_matches_reference(periods, batch_shape, skip):
    cell = clockwork_rnn(H, G, PERIODS[periods], skip_inactive=skip)
    params, carry, xs = setup(cell, batch_shape)
    step = jax.jit(cell.step)
    ref_step = reference_step(cell.periods, M)
    p64, ref_carry = to64(params), (np.asarray(carry.t), to64(carry.h))
    for t in range(NUM_STEPS):
        prev = carry.h
        carry, y = step(params, carry, xs[t])
        ref_carry, ref_y = ref_step(p64, ref_carry, to64(xs[t]))
        assert y.dtype == jnp.float32 and carry.t.dtype == jnp.int32
        np.testing.assert_array_equal(carry.t, np.full(batch_shape, t + 1))
        np.testing.assert_array_equal(carry.t, ref_carry[0])
        ref.assert_tree_close(y, ref_y, f"y at step {t}")
        ref.assert_tree_close(carry.h, ref_carry[1], f"h at step {t}")
        # Modules whose clock does not tick keep their values bit for bit.
        for i, period in enumerate(cell.periods):
            block = slice(i * M, (i + 1) * M)
            if t % period:
                np.testing.assert_array_equal(carry.h[..., block], prev[..., block])
            else:
                assert not np.array_equal(carry.h[..., block], prev[..., block])


def test_every_module_updates_at_first_step_then_per_period():
    cell = clockwork_rnn(H, G, (1, 2, 4))
    params, carry, xs = setup(cell, (2,))
    step = jax.jit(cell.step)
    updates = []
    for t in range(NUM_STEPS):
        prev = carry.h
        carry, _ = step(params, carry, xs[t])
        changed = [
            not np.array_equal(
                carry.h[:, i * M : (i + 1) * M], prev[:, i * M : (i + 1) * M]
            )
            for i in range(G)
        ]
        updates.append(changed)
    expected = [[t % p == 0 for p in (1, 2, 4)] for t in range(NUM_STEPS)]
    assert updates == expected


def test_per_batch_clocks_and_rec_mask():
    """Batch elements at different ``t`` (as after a reset) tick independently;
    ``rec_mask`` multiplies ``h`` where it enters the recurrent products."""
    cell = clockwork_rnn(H, G, (1, 2, 3))
    params, carry, xs = setup(cell, (4,))
    carry = carry._replace(t=jnp.asarray([0, 1, 2, 5], jnp.int32))
    mask = jnp.asarray(np.random.default_rng(3).uniform(0, 2, (4, H)), jnp.float32)
    ref_step = reference_step(cell.periods, M)
    p64, ref_carry = to64(params), (np.asarray(carry.t), to64(carry.h))
    step = jax.jit(lambda p, c, x: cell.recur(p, c, cell.project(p, x), mask))
    for t in range(4):
        carry, y = step(params, carry, xs[t])
        ref_carry, ref_y = ref_step(p64, ref_carry, to64(xs[t]), to64(mask))
        ref.assert_tree_close(y, ref_y, f"y at step {t}")
        np.testing.assert_array_equal(carry.t, ref_carry[0])


def test_activation_option():
    cell = clockwork_rnn(H, G, activation="relu")
    params, carry, xs = setup(cell, (2,))
    _, y = jax.jit(cell.step)(params, carry, xs[0])
    _, ref_y = reference_step(cell.periods, M, ref.relu)(
        to64(params), (np.asarray(carry.t), to64(carry.h)), to64(xs[0])
    )
    ref.assert_tree_close(y, ref_y, "relu y")


def loop(cell, params, xs, carry0, lengths, reverse):
    """Per batch element, a Python loop over ``cell.step`` on its valid prefix."""
    step = jax.jit(cell.step)
    ys = np.zeros((*xs.shape[:-1], H), np.float32)
    finals = []
    for b in range(xs.shape[0]):
        carry = jax.tree.map(lambda c, b=b: c[b], carry0)
        n = int(lengths[b])
        for t in range(n - 1, -1, -1) if reverse else range(n):
            carry, y = step(params, carry, xs[b, t])
            ys[b, t] = y
        finals.append(carry)
    return jax.tree.map(lambda *c: np.stack(c), *finals), ys


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_unroll_matches_loop(reverse):
    cell = clockwork_rnn(H, G, (1, 2, 3))
    params, carry0, xs = setup(cell, (3,))
    xs = jnp.moveaxis(xs, 0, 1)  # (B, T, I)
    lengths = np.asarray([NUM_STEPS, 5, 0], np.int32)
    carry, ys = jax.jit(
        lambda p, c, x, n: rnnjax.unroll(
            cell, p, x, carry=c, seq_lengths=n, reverse=reverse
        )
    )(params, carry0, xs, jnp.asarray(lengths))
    ref_carry, ref_ys = loop(cell, params, xs, carry0, lengths, reverse)
    np.testing.assert_allclose(ys, ref_ys, rtol=2e-5, atol=2e-5)
    np.testing.assert_array_equal(carry.t, lengths)
    np.testing.assert_allclose(carry.h, ref_carry.h, rtol=2e-5, atol=2e-5)


def test_unroll_default_carry_and_resets():
    """Zero initial carry; a reset returns the clock to zero (every module ticks)."""
    cell = clockwork_rnn(H, G)
    params, _, xs = setup(cell, (2,))
    xs = jnp.moveaxis(xs, 0, 1)
    resets = np.zeros((2, NUM_STEPS), bool)
    resets[1, 3] = True
    carry, ys = rnnjax.unroll(cell, params, xs, resets=jnp.asarray(resets))
    np.testing.assert_array_equal(carry.t, [NUM_STEPS, NUM_STEPS - 3])
    _, ys_fresh = rnnjax.unroll(cell, params, xs[1:, 3:])
    np.testing.assert_allclose(ys[1, 3:], ys_fresh[0], rtol=2e-5, atol=2e-5)


def test_gradients_finite_and_match_finite_differences():
    cell = clockwork_rnn(H, G, (1, 2, 3))
    params, carry0, xs = setup(cell, (2,))
    xs = jnp.moveaxis(xs, 0, 1)

    def loss(p, skip=True):
        c = clockwork_rnn(H, G, (1, 2, 3), skip_inactive=skip)
        carry, ys = rnnjax.unroll(c, p, xs, carry=carry0)
        return jnp.sum(ys**2) + jnp.sum(jnp.sin(carry.h))

    grads = jax.jit(jax.grad(loss))(params)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))
    plain = jax.jit(jax.grad(lambda p: loss(p, skip=False)))(params)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, 1e-5, 1e-6), grads, plain
    )

    direction = randomize(params, seed=7, scale=1.0)
    eps = 1e-3
    shifted = lambda s: jax.tree.map(lambda p, d: p + s * d, params, direction)
    fd = (float(loss(shifted(eps))) - float(loss(shifted(-eps)))) / (2 * eps)
    analytic = sum(
        float(jnp.vdot(g, d))
        for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(direction), strict=True)
    )
    np.testing.assert_allclose(analytic, fd, rtol=2e-3)


def test_skipping_forward_jvp_and_vmap():
    """The skipping step holds its products in a ``lax.cond`` (forward only), and
    equals the plain step under ``jvp`` and ``vmap``."""
    skip, plain = (clockwork_rnn(H, G, skip_inactive=s) for s in (True, False))
    params, carry, xs = setup(skip, (2,), t0=1)
    assert "cond" in str(jax.make_jaxpr(skip.step)(params, carry, xs[0]))
    assert "cond" not in str(jax.make_jaxpr(plain.step)(params, carry, xs[0]))
    tangent = randomize(params, seed=5)
    outs = [
        jax.jit(
            lambda p, dp, c=c: jax.jvp(
                lambda q: c.step(q, carry, xs[0])[1], (p,), (dp,)
            )
        )(params, tangent)
        for c in (skip, plain)
    ]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, 1e-6, 1e-6), *outs)
    np.testing.assert_array_equal(outs[0][1][:, M:], 0.0)  # t=1: only module 0
    batched = jax.jit(skip.step)(params, carry, xs[0])
    mapped = jax.jit(jax.vmap(skip.step, (None, 0, 0)))(params, carry, xs[0])
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, 1e-6, 1e-6), batched, mapped
    )


@pytest.mark.parametrize("g", [1, 3, 4])
def test_param_count_is_block_triangular(g):
    m = 2
    cell = clockwork_rnn(m * g, g)
    params = jax.eval_shape(lambda: cell.init(jax.random.key(0), I))
    count = sum(a.size for a in jax.tree.leaves(params))
    assert count == I * m * g + m * g + m * m * g * (g + 1) // 2
    assert len(params["w_h"]) == g
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(params))


def test_periods_accept_numpy_integers():
    cell = clockwork_rnn(H, G, np.asarray([1, 3, 9]))
    assert cell.periods == (1, 3, 9) and all(type(p) is int for p in cell.periods)
    hash(cell)


def test_default_init():
    cell = clockwork_rnn(H, G)
    assert cell.periods == (1, 2, 4)
    params = cell.init(jax.random.key(0), I)
    np.testing.assert_array_equal(params["b"], 0.0)
    for i, w in enumerate(params["w_h"]):  # orthonormal columns, independent draws
        np.testing.assert_allclose(w.T @ w, np.eye(M), atol=1e-5, err_msg=f"w_h[{i}]")
    assert not np.allclose(params["w_h"][1][:M], params["w_h"][2])
    carry = cell.initial_carry((2, 3))
    assert carry.t.shape == (2, 3) and carry.t.dtype == jnp.int32
    assert carry.h.shape == (2, 3, H) and carry.h.dtype == jnp.float32
    np.testing.assert_array_equal(carry.h, 0.0)


def test_custom_initialisers():
    params = clockwork_rnn(H, G, **ref.CUSTOM_INITS).init(jax.random.key(0), I)
    np.testing.assert_array_equal(params["w_x"], np.full((I, H), 0.25))
    np.testing.assert_array_equal(params["b"], np.full((H,), 0.75))
    for i, w in enumerate(params["w_h"]):
        np.testing.assert_array_equal(w, np.full(((G - i) * M, M), -0.5))


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((7, 3), {}, "hidden_size"),
        ((6, 0), {}, "num_modules"),
        ((6, 3, (1, 2)), {}, "periods"),
        ((6, 3, (1, 4, 2)), {}, "ascending"),
        ((6, 3, (0, 1, 2)), {}, "periods"),
        ((6, 3, (1, 2, 2.5)), {}, "periods"),
        ((6, 3, (True, 2, 4)), {}, "periods"),
        ((6, 3, 4), {}, "periods"),
        ((6, 3, "124"), {}, "periods"),
        ((6, 3), {"activation": "gelu"}, "activation"),
    ],
)
def test_bad_configuration(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        clockwork_rnn(*args, **kwargs)


def test_bad_params_are_rejected_by_unroll():
    cell = clockwork_rnn(H, G)
    params = cell.init(jax.random.key(0), I)
    dense = dict(params, w_h=jnp.zeros((H, H)))
    with pytest.raises(ValueError, match="params"):
        rnnjax.unroll(cell, dense, jnp.zeros((2, NUM_STEPS, I)))
    with pytest.raises(ValueError, match="input features"):
        rnnjax.unroll(cell, params, jnp.zeros((2, NUM_STEPS, I + 1)))

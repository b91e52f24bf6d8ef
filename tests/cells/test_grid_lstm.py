"""Grid LSTM against a float64 NumPy implementation of Kalchbrenner et al. 2015.

The reference restates ``rnnjax/cells/grid_lstm.py``'s docstring: an N-LSTM block
concatenates the hidden vectors, ``Hc = [h_1..h_N]``, and each dimension ``i`` runs a
standard LSTM (gates ``i, f, g, o``) on ``Hc`` with its own weights and its own
memory ``m_i``; a non-LSTM dimension is ``tanh(Hc W + b)``; a priority dimension is
computed first and its new ``h`` replaces the old one in ``Hc``. The 2-D cell runs
the depth dimension bottom to top from ``h = x W_in``, ``m = 0``.
"""

import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rnnjax
from rnnjax.cells.grid_lstm import GridLSTM, grid_block, grid_lstm, grid_lstm_1d
from tests.cells import _reference as ref
from tests.conftest import randomize

I, H = 4, 5

# ------------------------------------------------------------------- the reference


def np_lstm(p, concat, m):
    a = concat @ p["w"] + p["b"]
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=-1)
    m = ref.sigmoid(a_f) * m + ref.sigmoid(a_i) * np.tanh(a_g)
    return ref.sigmoid(a_o) * np.tanh(m), m


def np_block(params, hs, ms, non_lstm=(), priority=None):
    hs, ms = list(hs), list(ms)
    out_h, out_m = list(hs), list(ms)
    order = list(range(len(params)))
    if priority is not None:
        order.remove(priority)
        order.insert(0, priority)
    concat = None
    for k, i in enumerate(order):
        if concat is None or (priority is not None and k == 1):
            concat = np.concatenate(hs, axis=-1)
        if i in non_lstm:
            out_h[i] = np.tanh(concat @ params[i]["w"] + params[i]["b"])
        else:
            out_h[i], out_m[i] = np_lstm(params[i], concat, ms[i])
        if i == priority:
            hs[i] = out_h[i]
    return tuple(out_h), tuple(out_m)


def grid_reference(depth, tied, non_lstm_depth, priority):
    """Reference step; the carry is a tuple over layers of ``(m, h)``."""

    def step(params, carry, x):
        h_d = x @ params["w_in"]
        m_d = np.zeros_like(h_d)
        new = []
        for l in range(depth):
            p = params["layers"][0 if tied else l]
            m_t, h_t = carry[l]
            (h_t, h_d), (m_t, m_d) = np_block(
                (p["time"], p["depth"]),
                (h_t, h_d),
                (m_t, m_d),
                non_lstm=(1,) if non_lstm_depth else (),
                priority=1 if priority == "depth" else None,
            )
            new.append((m_t, h_t))
        return tuple(new), h_d

    return step


def as_tuple(carry):
    return tuple((state.c, state.h) for state in carry)


def jit_step(cell):
    return types.SimpleNamespace(
        init=cell.init, initial_carry=cell.initial_carry, step=jax.jit(cell.step)
    )


# ------------------------------------------------------------------------- maths


@pytest.mark.parametrize(
    "n, non_lstm, priority",
    [(1, (), None), (2, (), None), (2, (1,), 1), (3, (), None), (3, (2,), 0)],
)
def test_block_matches_reference(n, non_lstm, priority):
    rng = np.random.default_rng(n)
    params = tuple(
        {
            "w": rng.standard_normal((n * H, (1 if i in non_lstm else 4) * H)),
            "b": rng.standard_normal((1 if i in non_lstm else 4) * H),
        }
        for i in range(n)
    )
    hs = tuple(rng.standard_normal((3, H)) for _ in range(n))
    ms = tuple(rng.standard_normal((3, H)) for _ in range(n))
    f32 = lambda t: jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), t)
    got = grid_block(
        f32(params), f32(hs), f32(ms), non_lstm=non_lstm, priority=priority
    )
    p64, h64, m64 = (ref.to64(f32(t)) for t in (params, hs, ms))
    expected = np_block(p64, h64, m64, non_lstm, priority)
    ref.assert_tree_close(got, expected, f"grid_block N={n}")


OPTIONS = [
    dict(tied=True),
    dict(tied=False),
    dict(tied=True, non_lstm_depth=True),
    dict(tied=False, priority="depth"),
    dict(tied=True, non_lstm_depth=True, priority="depth"),
]
OPTION_IDS = ["tied", "untied", "non_lstm", "priority", "non_lstm_priority"]


@pytest.mark.parametrize("batch_shape", [(), (2,)], ids=["unbatched", "B2"])
@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_cell_matches_reference(options, batch_shape):
    depth = 3
    cell = grid_lstm(H, depth, **options)
    step = grid_reference(
        depth,
        options.get("tied", True),
        options.get("non_lstm_depth", False),
        options.get("priority"),
    )
    ref.check_steps(jit_step(cell), I, batch_shape, step, as_tuple)


def test_priority_changes_time_update():
    cell, prio = grid_lstm(H, 2), grid_lstm(H, 2, priority="depth")
    params, carry, xs = ref.setup(cell, I, (2,))
    (a, _), (b, _) = cell.step(params, carry, xs[0]), prio.step(params, carry, xs[0])
    assert not np.allclose(a[0].h, b[0].h, atol=1e-3)


# ------------------------------------------------------- unroll, jit, grad


def loop(cell, params, carry, xs):
    ys = []
    for t in range(xs.shape[0]):
        carry, y = cell.step(params, carry, xs[t])
        ys.append(y)
    return carry, jnp.stack(ys)


def test_unroll_matches_loop_with_lengths():
    cell = grid_lstm(H, 2, tied=False, priority="depth")
    params, carry, xs = ref.setup(cell, I, (2,))
    expected = loop(cell, params, carry, xs)
    got = rnnjax.unroll(cell, params, xs, carry=carry, time_major=True)
    ref.assert_tree_close(got, expected, "unroll")
    lengths = jnp.array([ref.NUM_STEPS, 2])
    final, ys = rnnjax.unroll(
        cell, params, xs, carry=carry, seq_lengths=lengths, time_major=True
    )
    short_carry, short_ys = loop(cell, params, carry, xs[:2])
    for l in range(2):
        np.testing.assert_allclose(final[l].c[1], short_carry[l].c[1], rtol=1e-6)
        np.testing.assert_allclose(final[l].h[1], short_carry[l].h[1], rtol=1e-6)
    np.testing.assert_allclose(ys[:2, 1], short_ys[:, 1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ys[:, 0], expected[1][:, 0], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(ys[2:, 1], 0.0)


def test_grad():
    """Gradients reach every parameter, are finite, and match finite differences."""
    cell = grid_lstm(H, 2, tied=False)
    params, carry, xs = ref.setup(cell, I, (2,))

    @jax.jit
    @jax.value_and_grad
    def loss(p):
        _, ys = rnnjax.unroll(cell, p, xs, carry=carry, time_major=True)
        return jnp.sum(ys**2)

    _, grads = loss(params)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        assert np.all(np.isfinite(g)), path
        assert np.any(g != 0), path
    v = randomize(params, seed=7)
    eps = 1e-2
    plus = jax.tree.map(lambda p, d: p + eps * d, params, v)
    minus = jax.tree.map(lambda p, d: p - eps * d, params, v)
    fd = (loss(plus)[0] - loss(minus)[0]) / (2 * eps)
    ad = sum(jax.tree.leaves(jax.tree.map(jnp.vdot, grads, v)))
    np.testing.assert_allclose(ad, fd, rtol=2e-2)


def test_stack_with_recurrent_dropout():
    """Inside ``rnnjax.stack``; a recurrent-dropout mask of width ``L*H``."""
    cell = grid_lstm(H, 2, non_lstm_depth=True)
    model = rnnjax.stack(cell, recurrent_dropout=0.5)
    params = randomize(jax.eval_shape(lambda: model.init(jax.random.key(0), I)))
    xs = jnp.asarray(np.random.default_rng(0).standard_normal((2, 3, I)), jnp.float32)
    _, ys = model.apply(params, xs)
    _, ys_drop = model.apply(params, xs, key=jax.random.key(1), training=True)
    assert ys.shape == ys_drop.shape == (2, 3, H)
    assert np.all(np.isfinite(ys_drop)) and not np.allclose(ys, ys_drop)
    assert cell.rec_width(params[0][0]) == 2 * H


# --------------------------------------------------------------- params and init


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("non_lstm_depth", [True, False])
def test_param_shapes(tied, non_lstm_depth):
    cell = grid_lstm(H, 3, tied=tied, non_lstm_depth=non_lstm_depth)
    params = jax.eval_shape(lambda: cell.init(jax.random.key(0), I))
    assert params["w_in"].shape == (I, H)
    assert len(params["layers"]) == (1 if tied else 3)
    gd = 1 if non_lstm_depth else 4
    for layer in params["layers"]:
        assert layer["time"]["w"].shape == (2 * H, 4 * H)
        assert layer["time"]["b"].shape == (4 * H,)
        assert layer["depth"]["w"].shape == (2 * H, gd * H)
        assert layer["depth"]["b"].shape == (gd * H,)
    cell.check_params(params, I)
    with pytest.raises(ValueError, match="xs"):
        cell.check_params(params, I + 1)
    carry = cell.initial_carry((2,))
    assert len(carry) == 3 and carry[0].h.shape == (2, H)


def test_default_init_and_errors():
    params = grid_lstm(H, 2, forget_bias=1.5).init(jax.random.key(0), I)
    b = ref.split(np.asarray(params["layers"][0]["time"]["b"]), "ifgo")
    np.testing.assert_array_equal(b["f"], np.full(H, 1.5))
    np.testing.assert_array_equal(b["i"], np.zeros(H))
    with pytest.raises(ValueError, match="priority"):
        grid_lstm(H, 2, priority="time")
    with pytest.raises(ValueError, match="depth"):
        grid_lstm(H, 0)
    assert isinstance(grid_lstm(H, 2), GridLSTM)


# --------------------------------------------------------------------- 1-D parity


def test_1d_matches_block_reference():
    net = grid_lstm_1d(H, 3, tied=False)
    params = randomize(jax.eval_shape(lambda: net.init(jax.random.key(0), I)))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, I)), jnp.float32)
    p64 = ref.to64(params)
    h = ref.to64(x) @ p64["w_in"]
    m = np.zeros_like(h)
    for l in range(3):
        (h,), (m,) = np_block(p64["layers"][l], (h,), (m,))
    ref.assert_tree_close(jax.jit(net.apply)(params, x), h, "grid_lstm_1d")


def test_1d_grid_lstm_learns_parity():
    """The paper's k-bit parity task (k = 12; held-out quarter of the strings)."""
    k, hidden, depth, steps = 12, 8, 6, 500
    bits = (np.arange(2**k)[:, None] >> np.arange(k)[None, :]) & 1
    labels = bits.sum(1) % 2
    perm = np.random.default_rng(0).permutation(2**k)
    test, train = perm[: 2**k // 4], perm[2**k // 4 :]
    xs = jnp.asarray(2.0 * bits - 1.0, jnp.float32)
    net = grid_lstm_1d(hidden, depth)
    params = {
        "net": net.init(jax.random.key(0), k),
        "w_out": jnp.zeros((hidden, 2)),
        "b_out": jnp.zeros((2,)),
    }

    def logits(p, x):
        return net.apply(p["net"], x) @ p["w_out"] + p["b_out"][None]

    def loss(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(logits(p, x), y).mean()

    opt = optax.adamw(1e-2, weight_decay=1e-2)

    @jax.jit
    def train_steps(p, x, y):
        def body(carry, _):
            p, s = carry
            g = jax.grad(loss)(p, x, y)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(body, (p, opt.init(p)), None, length=steps)[0][0]

    params = train_steps(params, xs[train], jnp.asarray(labels[train]))
    pred = np.asarray(jnp.argmax(logits(params, xs[test]), -1))
    accuracy = (pred == labels[test]).mean()
    assert accuracy > 0.95, accuracy

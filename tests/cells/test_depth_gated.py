"""The depth-gated LSTM against a float64 NumPy implementation of Yao et al. 2015.

The reference restates ``rnnjax/cells/depth_gated.py``'s docstring: layers run
bottom to top within a step, layer ``l`` reading ``h^{l-1}_t`` (``x_t`` for the
first); gate blocks ``i, f, g, o``; peepholes ``i, f`` on ``c^l_{t-1}`` and ``o`` on
``c^l_t``; for ``l >= 1`` the depth gate
``d = sigmoid(b_d + x W_xd + w_cd * c^l_{t-1} + w_ld * c^{l-1}_t)`` adds
``d * c^{l-1}_t`` to the cell.
"""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax.cells.depth_gated import DepthGatedLSTM, depth_gated_lstm
from tests.cells import _reference as ref
from tests.conftest import randomize

# Their time is compiling small programs: XLA's cheaper passes (conftest).
pytestmark = pytest.mark.usefixtures("fast_compile")

I, H = 4, 5
BATCH_SHAPES = [(), (2,)]
BATCH_IDS = ["unbatched", "B2"]


# ------------------------------------------------------------------- the reference


def depth_gated_reference(num_layers, peephole):
    """Reference step; the carry is a tuple over layers of ``(c, h)``."""
    sigmoid = ref.sigmoid

    def step(params, carry, x):
        new, below_c = [], None
        for l in range(num_layers):
            p, (c_prev, h_prev) = params[l], carry[l]
            a = x @ p["w_x"] + h_prev @ p["w_h"] + p["b"]
            a_i, a_f, a_g, a_o = np.split(a, 4, axis=-1)
            if peephole:
                a_i = a_i + p["peephole_i"] * c_prev
                a_f = a_f + p["peephole_f"] * c_prev
            c = sigmoid(a_f) * c_prev + sigmoid(a_i) * np.tanh(a_g)
            if l > 0:
                d = sigmoid(
                    p["b_d"] + x @ p["w_xd"] + p["w_cd"] * c_prev + p["w_ld"] * below_c
                )
                c = d * below_c + c
            if peephole:
                a_o = a_o + p["peephole_o"] * c
            h = sigmoid(a_o) * np.tanh(c)
            new.append((c, h))
            x, below_c = h, c  # the next layer's input and lower cell
        return tuple(new), x

    return step


def as_tuple(carry):
    return tuple((state.c, state.h) for state in carry)


# ------------------------------------------------------------------------- maths


@pytest.mark.parametrize("batch_shape", BATCH_SHAPES, ids=BATCH_IDS)
@pytest.mark.parametrize("peephole", [True, False], ids=["peephole", "plain"])
# One layer is the bottom layer of these (checked in test_depth_gate_links_the_cells).
@pytest.mark.parametrize("num_layers", [2, 3])
def test_matches_reference(num_layers, peephole, batch_shape):
    cell = depth_gated_lstm(H, num_layers, peephole=peephole)
    step = depth_gated_reference(num_layers, peephole)
    ref.check_steps(jax_jit_step(cell), I, batch_shape, step, as_tuple)


def jax_jit_step(cell):
    """``cell`` with a jitted ``step`` (one compile per test instead of op by op)."""
    return types.SimpleNamespace(
        init=cell.init, initial_carry=cell.initial_carry, step=jax.jit(cell.step)
    )


def test_bfloat16_compute():
    cell = depth_gated_lstm(H, 3, dtype=jnp.bfloat16)
    tol = ref.BF16_TOL
    step = depth_gated_reference(3, True)
    ref.check_steps(cell, I, (2,), step, as_tuple, rtol=tol, atol=tol)


def test_depth_gate_links_the_cells():
    """Zeroing ``w_ld`` changes the top layer; the bottom layer never sees the
    layers above it."""
    cell = depth_gated_lstm(H, 2)
    params, carry, xs = ref.setup(cell, I, (2,))
    new, y = cell.step(params, carry, xs[0])
    cut = (params[0], {**params[1], "w_ld": jnp.zeros((H,))})
    new_cut, y_cut = cell.step(cut, carry, xs[0])
    assert not np.allclose(y, y_cut, atol=1e-3)
    np.testing.assert_array_equal(new[0].c, new_cut[0].c)
    bottom = depth_gated_lstm(H, 1)
    (state0,), _ = bottom.step(params[:1], carry[:1], xs[0])
    np.testing.assert_allclose(state0.h, new[0].h, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("batch_shape", BATCH_SHAPES, ids=BATCH_IDS)
def test_project_is_layer_zero_input_product(batch_shape):
    cell = depth_gated_lstm(H, 2)
    params, _, xs = ref.setup(cell, I, batch_shape)
    p = ref.to64(params[0])
    ref.assert_tree_close(
        cell.project(params, xs), ref.to64(xs) @ p["w_x"] + p["b"], "project(xs)"
    )


# ------------------------------------------------------- unroll, jit, grad, stack


def loop(cell, params, carry, xs):
    ys = []
    for t in range(xs.shape[0]):
        carry, y = cell.step(params, carry, xs[t])
        ys.append(y)
    return carry, jnp.stack(ys)


def test_unroll_matches_loop():
    cell = depth_gated_lstm(H, 3)
    params, carry, xs = ref.setup(cell, I, (2,))  # xs (T, 2, I)
    expected = loop(cell, params, carry, xs)
    run = jax.jit(
        lambda p, c, x, **kw: rnnjax.unroll(cell, p, x, carry=c, **kw),
        static_argnames=("time_major", "reverse"),
    )
    ref.assert_tree_close(
        run(params, carry, xs, time_major=True), expected, "unroll time-major"
    )
    batch_first = run(params, carry, jnp.moveaxis(xs, 0, 1))
    ref.assert_tree_close(
        batch_first, (expected[0], jnp.moveaxis(expected[1], 0, 1)), "unroll"
    )
    rev = run(params, carry, xs, time_major=True, reverse=True)
    c_rev, ys_rev = loop(cell, params, carry, xs[::-1])
    ref.assert_tree_close(rev, (c_rev, ys_rev[::-1]), "unroll(reverse=True)")


def test_unroll_seq_lengths():
    """Padded steps leave every layer's carry unchanged and output zero."""
    cell = depth_gated_lstm(H, 2)
    params, carry, xs = ref.setup(cell, I, (2,))
    lengths = jnp.array([ref.NUM_STEPS, 2])
    final, ys = rnnjax.unroll(
        cell, params, xs, carry=carry, seq_lengths=lengths, time_major=True
    )
    short_carry, short_ys = loop(cell, params, carry, xs[:2])
    for l in range(2):
        np.testing.assert_allclose(final[l].c[1], short_carry[l].c[1], rtol=1e-6)
        np.testing.assert_allclose(final[l].h[1], short_carry[l].h[1], rtol=1e-6)
    np.testing.assert_allclose(ys[:2, 1], short_ys[:, 1], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(ys[2:, 1], 0.0)


def test_grad():
    """Gradients flow to every parameter of every layer, and are finite."""
    cell = depth_gated_lstm(H, 2)
    params, carry, xs = ref.setup(cell, I, (2,))

    @jax.jit
    @jax.value_and_grad
    def loss(p):
        _, ys = rnnjax.unroll(cell, p, xs, carry=carry, time_major=True)
        return jnp.sum(ys**2)

    _, grads = loss(params)
    for l, layer in enumerate(grads):
        for name, g in layer.items():
            assert np.all(np.isfinite(g)), (l, name)
            assert np.any(g != 0), (l, name)
    v = randomize(params, seed=7)
    eps = 1e-2
    plus = jax.tree.map(lambda p, d: p + eps * d, params, v)
    minus = jax.tree.map(lambda p, d: p - eps * d, params, v)
    fd = (loss(plus)[0] - loss(minus)[0]) / (2 * eps)
    ad = sum(jax.tree.leaves(jax.tree.map(jnp.vdot, grads, v)))
    np.testing.assert_allclose(ad, fd, rtol=2e-2)


def test_stack_with_recurrent_dropout():
    """Inside ``rnnjax.stack``; a recurrent-dropout mask of width ``L*H``."""
    cell = depth_gated_lstm(H, 2)
    model = rnnjax.stack(cell, recurrent_dropout=0.5)
    params = randomize(jax.eval_shape(lambda: model.init(jax.random.key(0), I)))
    xs = jnp.asarray(np.random.default_rng(0).standard_normal((2, 3, I)), jnp.float32)
    _, ys = model.apply(params, xs)
    _, ys_drop = model.apply(params, xs, key=jax.random.key(1), training=True)
    assert ys.shape == ys_drop.shape == (2, 3, H)
    assert np.all(np.isfinite(ys_drop)) and not np.allclose(ys, ys_drop)
    assert cell.rec_width(params[0][0]) == 2 * H


# --------------------------------------------------------------- params and init


@pytest.mark.parametrize("peephole", [True, False], ids=["peephole", "plain"])
def test_param_shapes(peephole):
    cell = depth_gated_lstm(H, 3, peephole=peephole)
    params = jax.eval_shape(lambda: cell.init(jax.random.key(0), I))
    assert isinstance(params, tuple) and len(params) == 3
    for l, layer in enumerate(params):
        expected = {
            "w_x": (I if l == 0 else H, 4 * H),
            "w_h": (H, 4 * H),
            "b": (4 * H,),
        }
        if peephole:
            expected.update({f"peephole_{n}": (H,) for n in "ifo"})
        if l > 0:
            expected.update(w_xd=(H, H), b_d=(H,), w_cd=(H,), w_ld=(H,))
        assert {k: tuple(v.shape) for k, v in layer.items()} == expected, l


def test_default_init():
    cell = depth_gated_lstm(H, 2, forget_bias=1.5)
    params = jax.jit(cell.init, static_argnums=1)(jax.random.key(0), I)
    for l, layer in enumerate(params):
        b = ref.split(np.asarray(layer["b"]), "ifgo")
        np.testing.assert_array_equal(b["f"], np.full(H, 1.5))
        np.testing.assert_array_equal(b["i"], np.zeros(H))
        ref.assert_orthonormal_blocks(layer["w_h"], 4, f"layer {l} w_h")
    np.testing.assert_array_equal(params[1]["b_d"], np.zeros(H))
    limit = np.sqrt(6.0 / (2 * H))
    assert np.all(np.abs(params[1]["w_xd"]) <= limit)
    for name in ("w_cd", "w_ld", "peephole_i"):
        assert np.all(np.abs(params[1][name]) <= 0.1)
    assert not np.allclose(params[0]["w_h"], params[1]["w_h"])  # layers differ


def test_custom_initialisers():
    cell = depth_gated_lstm(H, 2, forget_bias=0.0, **ref.CUSTOM_INITS)
    params = cell.init(jax.random.key(0), I)
    for layer in params:
        np.testing.assert_array_equal(layer["w_x"], np.full(layer["w_x"].shape, 0.25))
        np.testing.assert_array_equal(layer["w_h"], np.full(layer["w_h"].shape, -0.5))
        np.testing.assert_array_equal(layer["b"], np.full(4 * H, 0.75))
    np.testing.assert_array_equal(params[1]["w_xd"], np.full((H, H), 0.25))
    np.testing.assert_array_equal(params[1]["b_d"], np.full(H, 0.75))


@pytest.mark.parametrize("batch_shape", [(), (3,), (2, 3)])
def test_initial_carry(batch_shape):
    carry = depth_gated_lstm(H, 3).initial_carry(batch_shape)
    assert len(carry) == 3
    for state in carry:
        assert isinstance(state, rnnjax.LSTMState)
        assert state.c.shape == state.h.shape == (*batch_shape, H)
        assert state.gates is None
        np.testing.assert_array_equal(state.c, 0.0)


# ------------------------------------------------------------------------ errors


@pytest.mark.parametrize("num_layers", [0, -1, 2.0, True])
def test_bad_num_layers_raises(num_layers):
    with pytest.raises(ValueError, match="num_layers"):
        depth_gated_lstm(H, num_layers)


def test_wrong_input_size_raises():
    cell = depth_gated_lstm(H, 2)
    params, carry, _ = ref.setup(cell, I, (2,))
    bad = jnp.zeros((2, 3, I + 1))
    with pytest.raises(ValueError, match=r"x: expected 4 input features"):
        cell.step(params, carry, bad[:, 0])
    with pytest.raises(ValueError, match=r"xs: expected 4 input features"):
        rnnjax.unroll(cell, params, bad)


def test_wrong_params_or_carry_raise():
    cell = depth_gated_lstm(H, 2)
    params, carry, xs = ref.setup(cell, I, (2,))
    three = depth_gated_lstm(H, 3)
    with pytest.raises(ValueError, match="params: expected"):
        rnnjax.unroll(three, params, xs, time_major=True)
    with pytest.raises(ValueError, match="carry: expected"):
        rnnjax.unroll(cell, params, xs, carry=carry[:1], time_major=True)
    with pytest.raises(ValueError, match=r"carry: expected .*\(LSTMState.*, LSTMState"):
        cell.step(params, carry[:1], xs[0])
    assert isinstance(cell, DepthGatedLSTM)

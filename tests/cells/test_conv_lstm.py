"""ConvLSTM against a float64 NumPy implementation of Shi et al. 2015's equations.

The reference restates ``rnnjax/cells/conv_lstm.py``'s docstring:

- the convolution is a stride-1 cross-correlation with zero "SAME" padding,
  ``(k - 1) // 2`` zeros before and ``k // 2`` after along each spatial axis,
  written here as a direct loop over the kernel offsets;
- kernels are channels-last ``(*K, C_in, C_out)``; gate blocks ``i, f, g, o`` of
  ``H`` columns each;
- ``i, f`` peep at ``c_{t-1}``, ``o`` at ``c_t``, through Hadamard weights
  ``(*S, H)`` (``peephole=True``) or ``(H,)`` (``peephole="channel"``).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax.cells.conv_lstm import conv_lstm
from tests.cells import _reference as ref
from tests.conftest import randomize

# Their time is compiling small programs: XLA's cheaper passes (conftest).
pytestmark = pytest.mark.usefixtures("fast_compile")

C, H = 3, 4
NUM_STEPS = 4

# spatial case -> (spatial shape S, kernel size K); even kernel sizes exercise the
# asymmetric "SAME" padding.
SPATIAL = {
    "1d": ((7,), (3,)),
    "1d_even": ((6,), (4,)),
    "2d": ((5, 4), (3, 2)),
    "3d": ((3, 4, 2), (3, 1, 2)),
}
PEEPHOLES = {"position": True, "channel": "channel", "none": False}
BATCH_SHAPES = [(), (2,)]
BATCH_IDS = ["unbatched", "B2"]


# ------------------------------------------------------------------- the reference


def correlate_same(x, w):
    """``x (N, *S, C)`` cross-correlated with ``w (*K, C, O)``, zero "SAME" padding."""
    kernel = w.shape[:-2]
    spatial = x.shape[1:-1]
    pad = [(0, 0)] + [((k - 1) // 2, k // 2) for k in kernel] + [(0, 0)]
    xp = np.pad(x, pad)
    out = np.zeros((x.shape[0], *spatial, w.shape[-1]))
    for offset in itertools.product(*(range(k) for k in kernel)):
        window = tuple(slice(o, o + s) for o, s in zip(offset, spatial, strict=True))
        out += xp[(slice(None), *window)] @ w[offset]
    return out


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def conv_lstm_reference(peephole):
    """One step on ``x (N, *S, C)``, carry ``(c, h)`` each ``(N, *S, H)``."""

    def step(p, carry, x):
        c_prev, h_prev = carry
        a = correlate_same(x, p["w_x"]) + correlate_same(h_prev, p["w_h"]) + p["b"]
        a_i, a_f, a_g, a_o = np.split(a, 4, axis=-1)
        if peephole:
            a_i = a_i + p["peephole_i"] * c_prev
            a_f = a_f + p["peephole_f"] * c_prev
        i, f = sigmoid(a_i), sigmoid(a_f)
        c = f * c_prev + i * np.tanh(a_g)
        if peephole:
            a_o = a_o + p["peephole_o"] * c
        h = sigmoid(a_o) * np.tanh(c)
        return (c, h), h

    return step


def make(case, peephole="position", **kwargs):
    spatial, kernel = SPATIAL[case]
    return conv_lstm(
        H, kernel, spatial_shape=spatial, peephole=PEEPHOLES[peephole], **kwargs
    )


def setup(cell, batch_shape, seed=0):
    """Random params, a random initial carry and ``NUM_STEPS`` inputs (float32)."""
    spatial = cell.spatial_shape
    key = jax.random.key(seed)
    params = randomize(jax.eval_shape(lambda: cell.init(key, C)), seed=seed)
    carry = jax.eval_shape(lambda: cell.initial_carry((*batch_shape, *spatial)))
    carry = randomize(carry, seed=seed + 1)
    rng = np.random.default_rng(seed + 2)
    xs = rng.standard_normal((NUM_STEPS, *batch_shape, *spatial, C))
    return params, carry, jnp.asarray(xs, jnp.float32)


def batched(a, batch_shape):
    """The reference works on ``(N, ...)``: add a batch axis when there is none."""
    return a[None] if batch_shape == () else a


def unbatched(a, batch_shape):
    return a[0] if batch_shape == () else a


# ------------------------------------------------------------------------- maths


# Every peephole kind in 1-D and 2-D; the even kernel and 3-D with the paper's.
REFERENCE_CASES = [(case, peep) for case in ("1d", "2d") for peep in PEEPHOLES] + [
    ("1d_even", "position"),
    ("3d", "position"),
]


@pytest.mark.parametrize("batch_shape", BATCH_SHAPES, ids=BATCH_IDS)
@pytest.mark.parametrize(
    "case, peephole", REFERENCE_CASES, ids=[f"{c}-{p}" for c, p in REFERENCE_CASES]
)
def test_matches_reference(case, peephole, batch_shape):
    cell = make(case, peephole)
    params, carry, xs = setup(cell, batch_shape)
    step = jax.jit(cell.step)
    ref_step = conv_lstm_reference(PEEPHOLES[peephole])
    p64 = ref.to64(params)
    ref_carry = tuple(batched(a, batch_shape) for a in ref.to64((carry.c, carry.h)))
    for t in range(NUM_STEPS):
        carry, y = step(params, carry, xs[t])
        ref_carry, ref_y = ref_step(
            p64, ref_carry, batched(ref.to64(xs[t]), batch_shape)
        )
        expected = jax.tree.map(lambda a: unbatched(a, batch_shape), (ref_carry, ref_y))
        ref.assert_tree_close(
            ((carry.c, carry.h), y), expected, f"(carry, y) at step {t}"
        )
        assert carry.gates is None


def test_peepholes_matter():
    """Per-position peepholes are not a no-op: zeroing one changes the output."""
    cell = make("2d")
    params, carry, xs = setup(cell, (2,))
    _, y = cell.step(params, carry, xs[0])
    zeroed = {**params, "peephole_f": jnp.zeros_like(params["peephole_f"])}
    _, y0 = cell.step(zeroed, carry, xs[0])
    assert not np.allclose(y, y0, atol=1e-3)


@pytest.mark.parametrize("batch_shape", BATCH_SHAPES, ids=BATCH_IDS)
def test_project_any_leading_dims(batch_shape):
    cell = make("2d")
    params, _, xs = setup(cell, batch_shape)
    z = cell.project(params, xs)  # (T, *B, *S, C) -> (T, *B, *S, 4H)
    p = ref.to64(params)
    flat = ref.to64(xs).reshape((-1, *xs.shape[-3:]))
    expected = (correlate_same(flat, p["w_x"]) + p["b"]).reshape(z.shape)
    ref.assert_tree_close(z, expected, "project(xs)")
    for t in range(NUM_STEPS):
        ref.assert_tree_close(cell.project(params, xs[t]), expected[t], f"step {t}")


def test_bfloat16_compute():
    cell = make("2d", dtype=jnp.bfloat16)
    params, carry, xs = setup(cell, (2,))
    ref_carry = ref.to64((carry.c, carry.h))
    ref_step = conv_lstm_reference(True)
    for t in range(NUM_STEPS):
        carry, y = cell.step(params, carry, xs[t])
        ref_carry, ref_y = ref_step(ref.to64(params), ref_carry, ref.to64(xs[t]))
        tol = ref.BF16_TOL
        ref.assert_tree_close(y, ref_y, f"y at step {t}", rtol=tol, atol=tol)
        assert carry.c.dtype == jnp.float32


# ------------------------------------------------------- unroll, jit, grad, stack


def loop(cell, params, carry, xs):
    ys = []
    for t in range(xs.shape[0]):
        carry, y = cell.step(params, carry, xs[t])
        ys.append(y)
    return carry, jnp.stack(ys)


def test_unroll_time_major_matches_loop():
    """``unroll`` (time-major) hoists the input convolution and equals a loop."""
    cell = make("2d")
    params, carry, xs = setup(cell, (2,))
    expected = loop(cell, params, carry, xs)
    jitted = jax.jit(
        lambda p, c, x: rnnjax.unroll(cell, p, x, carry=c, time_major=True)
    )
    ref.assert_tree_close(jitted(params, carry, xs), expected, "jit(unroll)")
    # reverse: the loop over the reversed sequence, outputs realigned.
    rev = rnnjax.unroll(cell, params, xs, carry=carry, time_major=True, reverse=True)
    c_rev, ys_rev = loop(cell, params, carry, xs[::-1])
    ref.assert_tree_close(rev, (c_rev, ys_rev[::-1]), "unroll(reverse=True)")


def test_unroll_batch_first_with_lengths_reverse_and_resets():
    """Batch-first ``(B, T, *S, C)``: time is found before the step's spatial axes;
    lengths and resets are per sequence ``(B,)`` and ``(B, T)``."""
    cell = make("2d")
    params, carry, xs = setup(cell, (2,))  # xs time-major (T, B, *S, C)
    lengths = jnp.array([xs.shape[0], 2])
    resets = jnp.zeros((2, xs.shape[0]), bool).at[0, 1].set(True)
    kwargs = dict(carry=carry, seq_lengths=lengths, reverse=True)
    batch_first = rnnjax.unroll(
        cell, params, jnp.moveaxis(xs, 0, 1), resets=resets, **kwargs
    )
    time_major = rnnjax.unroll(
        cell, params, xs, resets=resets.T, time_major=True, **kwargs
    )
    ref.assert_tree_close(
        batch_first,
        (time_major[0], jnp.moveaxis(time_major[1], 0, 1)),
        "batch-first == time-major",
    )
    # The short sequence: zero outputs past its length, carry from its own loop.
    assert np.all(np.asarray(batch_first[1][1, 2:]) == 0)
    short_carry = jax.tree.map(lambda c: c[1], carry)
    short_xs = jax.tree.map(lambda x: x[:2, 1], xs)
    c_short, ys_short = loop(cell, params, short_carry, short_xs[::-1])
    ref.assert_tree_close(
        (jax.tree.map(lambda c: c[1], batch_first[0]), batch_first[1][1, :2]),
        (c_short, ys_short[::-1]),
        "short sequence",
    )


def test_unroll_default_carry_is_zeros():
    cell = make("1d")
    params, _, xs = setup(cell, (2,))
    zeros = cell.initial_carry(xs.shape[1:-1])
    assert zeros.c.shape == (2, 7, H)
    ref.assert_tree_close(
        rnnjax.unroll(cell, params, xs, time_major=True),
        loop(cell, params, zeros, xs),
        "unroll from zeros",
    )


def test_grad():
    """Gradients flow to every parameter and the inputs, and are finite."""
    cell = make("2d")
    params, carry, xs = setup(cell, (2,))

    def loss(p, x):
        _, ys = rnnjax.unroll(cell, p, x, carry=carry, time_major=True)
        return jnp.sum(ys**2)

    value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    _, (g_params, g_xs) = value_and_grad(params, xs)
    for name, g in {**g_params, "xs": g_xs}.items():
        assert np.all(np.isfinite(g)), name
        assert np.any(g != 0), name
    # One directional derivative against a central difference.
    v = randomize(params, seed=7)
    eps = 1e-2
    plus = jax.tree.map(lambda p, d: p + eps * d, params, v)
    minus = jax.tree.map(lambda p, d: p - eps * d, params, v)
    fd = (value_and_grad(plus, xs)[0] - value_and_grad(minus, xs)[0]) / (2 * eps)
    ad = sum(jax.tree.leaves(jax.tree.map(jnp.vdot, g_params, v)))
    np.testing.assert_allclose(ad, fd, rtol=2e-2)


def test_vmap_matches_batch():
    cell = make("1d")
    params, carry, xs = setup(cell, (2,))
    batch = cell.step(params, carry, xs[0])
    mapped = jax.vmap(cell.step, in_axes=(None, 0, 0))(params, carry, xs[0])[1]
    np.testing.assert_allclose(mapped, batch[1], rtol=1e-6, atol=1e-6)


def test_stack_time_major():
    """Two ConvLSTM layers through ``rnnjax.stack`` (time-major)."""
    cell = make("1d", peephole="channel")
    model = rnnjax.stack(cell, num_layers=2, time_major=True)
    params = randomize(jax.eval_shape(lambda: model.init(jax.random.key(0), C)))
    _, _, xs = setup(cell, (2,))
    finals, ys = model.apply(params, xs)
    c1, y1 = loop(cell, params[0][0], cell.initial_carry(xs.shape[1:-1]), xs)
    c2, y2 = loop(cell, params[1][0], cell.initial_carry(xs.shape[1:-1]), y1)
    ref.assert_tree_close((finals, ys), (((c1,), (c2,)), y2), "stack")


# --------------------------------------------------------------- params and init


@pytest.mark.parametrize("peephole", list(PEEPHOLES))
@pytest.mark.parametrize("case", ["1d", "2d"])
def test_param_shapes(case, peephole):
    spatial, kernel = SPATIAL[case]
    cell = make(case, peephole)
    params = jax.eval_shape(lambda: cell.init(jax.random.key(0), C))
    expected = {"w_x": (*kernel, C, 4 * H), "w_h": (*kernel, H, 4 * H), "b": (4 * H,)}
    if peephole != "none":
        shape = (*spatial, H) if peephole == "position" else (H,)
        expected.update({f"peephole_{n}": shape for n in "ifo"})
    assert {k: tuple(v.shape) for k, v in params.items()} == expected
    assert all(v.dtype == jnp.float32 for v in params.values())


def test_default_init():
    cell = make("2d")
    params = jax.jit(cell.init, static_argnums=1)(jax.random.key(0), C)
    kernel = SPATIAL["2d"][1]
    b = ref.split(np.asarray(params["b"]), "ifgo")
    np.testing.assert_array_equal(b["f"], np.ones(H))
    for n in "igo":
        np.testing.assert_array_equal(b[n], np.zeros(H))
    # One orthogonal (prod(K) * H, H) matrix per gate.
    w_h = np.asarray(params["w_h"]).reshape(-1, 4 * H)
    ref.assert_orthonormal_blocks(w_h, 4, "w_h")
    # Glorot uniform with receptive field prod(K).
    rf = int(np.prod(kernel))
    limit = np.sqrt(6.0 / (rf * C + rf * 4 * H))
    assert np.all(np.abs(params["w_x"]) <= limit)
    for n in "ifo":
        assert np.all(np.abs(params[f"peephole_{n}"]) <= 0.1)


def test_custom_initialisers_and_forget_bias():
    cell = make("1d", forget_bias=2.0, **ref.CUSTOM_INITS)
    params = cell.init(jax.random.key(0), C)
    np.testing.assert_array_equal(params["w_x"], np.full(params["w_x"].shape, 0.25))
    np.testing.assert_array_equal(params["w_h"], np.full(params["w_h"].shape, -0.5))
    b = ref.split(np.asarray(params["b"]), "ifgo")
    np.testing.assert_array_equal(b["f"], np.full(H, 2.75))
    np.testing.assert_array_equal(b["g"], np.full(H, 0.75))


def test_factory_infers_spatial_dims():
    assert conv_lstm(H, 3, peephole=False).kernel_size == (3, 3)
    assert conv_lstm(H, 3, spatial_dims=1, peephole=False).kernel_size == (3,)
    assert conv_lstm(H, 5, spatial_shape=(8,)).kernel_size == (5,)
    assert conv_lstm(H, (3, 3, 3), peephole="channel").spatial_dims == 3
    assert conv_lstm(H, 3, peephole=False).hidden_channels == H


@pytest.mark.parametrize("batch_shape", [(7,), (2, 7), (2, 3, 7)])
def test_initial_carry_takes_leading_dims_of_x(batch_shape):
    carry = make("1d").initial_carry(batch_shape)
    assert isinstance(carry, rnnjax.LSTMState)
    assert carry.c.shape == carry.h.shape == (*batch_shape, H)
    assert carry.gates is None
    np.testing.assert_array_equal(carry.c, 0.0)


# ------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "kwargs, argname",
    [
        (dict(kernel_size=3), "spatial_shape"),  # peephole=True needs it
        (dict(kernel_size=3, spatial_shape=(4,), spatial_dims=2), "spatial_shape"),
        (dict(kernel_size=(3, 3), spatial_dims=1, peephole=False), "spatial_dims"),
        (dict(kernel_size=3, spatial_dims=4, peephole=False), "spatial_dims"),
        (dict(kernel_size=(3, 3), spatial_shape=(4,)), "spatial_shape"),
        (dict(kernel_size=(3, 0), peephole=False), "kernel_size"),
        (dict(kernel_size=(1, 1, 1, 1), peephole=False), "kernel_size"),
        (dict(kernel_size=3, peephole=False, padding="VALID"), "padding"),
        (dict(kernel_size=3, peephole="position"), "peephole"),
        (dict(kernel_size=3, peephole=1), "peephole"),
    ],
)
def test_bad_configuration_raises(kwargs, argname):
    with pytest.raises(ValueError, match=argname):
        conv_lstm(H, **kwargs)


def test_wrong_channels_raise():
    cell = make("2d")
    params, carry, xs = setup(cell, (2,))
    bad = jnp.zeros((*xs.shape[:-1], C + 1))
    with pytest.raises(ValueError, match=r"x: expected 3 input channels"):
        cell.step(params, carry, bad[0])
    with pytest.raises(ValueError, match=r"xs: expected 3 input features"):
        rnnjax.unroll(cell, params, bad, time_major=True)


def test_wrong_spatial_shape_raises():
    cell = make("2d")  # S = (5, 4)
    params, carry, xs = setup(cell, (2,))
    bad = jnp.zeros((NUM_STEPS, 2, 4, 5, C))
    with pytest.raises(ValueError, match=r"x: expected .*spatial shape \(5, 4\)"):
        cell.step(params, carry, bad[0])
    with pytest.raises(ValueError, match=r"batch_shape: .*\(5, 4\)"):
        cell.initial_carry((2, 4, 5))
    with pytest.raises(ValueError, match=r"\(5, 4\)"):
        rnnjax.unroll(cell, params, bad, time_major=True)
    with pytest.raises(ValueError, match="x: expected leading dims"):
        make("3d").project(params, xs[0, 0, 0])  # too few axes


def test_carry_mismatch_raises():
    cell = conv_lstm(H, 3, spatial_dims=1, peephole=False)  # any spatial size
    params = randomize(jax.eval_shape(lambda: cell.init(jax.random.key(0), C)))
    carry = cell.initial_carry((2, 7))
    z = cell.project(params, jnp.zeros((2, 9, C)))
    with pytest.raises(ValueError, match=r"carry: expected c and h of shape"):
        cell.recur(params, carry, z)

"""GRU (both reset placements) and MGU against float64 NumPy implementations.

GRU (Cho et al. 2014; gate blocks ``r, z, n``, PyTorch's order)::

    r = sigmoid(x W_xr + b_r + h W_hr)
    z = sigmoid(x W_xz + b_z + h W_hz)
    n = tanh(x W_xn + b_n + r * (h W_hn + b_hn))    reset_after=True (cuDNN)
    n = tanh(x W_xn + b_n + (r * h) W_hn)           reset_after=False (Cho et al.)
    h' = (1 - z) * n + z * h

MGU (Zhou et al. 2016; blocks ``f, n``)::

    f = sigmoid(x W_xf + b_f + h W_hf)
    n = tanh(x W_xn + b_n + (f * h) W_hn)
    h' = (1 - f) * h + f * n
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from tests.cells import _reference as ref

# Their time is compiling small programs: XLA's cheaper passes (conftest).
pytestmark = pytest.mark.usefixtures("fast_compile")

I, H = 4, 5


def gru_reference(reset_after):
    def step(p, h, x):
        wx, wh, b = (ref.split(p[k], "rzn") for k in ("w_x", "w_h", "b"))
        r = ref.sigmoid(x @ wx["r"] + b["r"] + h @ wh["r"])
        z = ref.sigmoid(x @ wx["z"] + b["z"] + h @ wh["z"])
        if reset_after:
            n = np.tanh(x @ wx["n"] + b["n"] + r * (h @ wh["n"] + p["b_hn"]))
        else:
            n = np.tanh(x @ wx["n"] + b["n"] + (r * h) @ wh["n"])
        h = (1.0 - z) * n + z * h
        return h, h

    return step


def mgu_step(p, h, x):
    wx, wh, b = (ref.split(p[k], "fn") for k in ("w_x", "w_h", "b"))
    f = ref.sigmoid(x @ wx["f"] + b["f"] + h @ wh["f"])
    n = np.tanh(x @ wx["n"] + b["n"] + (f * h) @ wh["n"])
    h = (1.0 - f) * h + f * n
    return h, h


# (name -> (constructor, reference step, gate blocks))
CELLS = {
    "gru_reset_after": (lambda **kw: rnnjax.gru(H, **kw), gru_reference(True), 3),
    "gru_reset_before": (
        lambda **kw: rnnjax.gru(H, reset_after=False, **kw),
        gru_reference(False),
        3,
    ),
    "mgu": (lambda **kw: rnnjax.mgu(H, **kw), mgu_step, 2),
}


@pytest.mark.parametrize("batch_shape", ref.BATCH_SHAPES, ids=ref.BATCH_IDS)
@pytest.mark.parametrize("name", list(CELLS))
def test_matches_reference(name, batch_shape):
    make, reference_step, _ = CELLS[name]
    ref.check_steps(make(), I, batch_shape, reference_step)


@pytest.mark.parametrize("name", list(CELLS))
def test_bfloat16_compute(name):
    """bfloat16 matrix products, float32 params, carry and outputs."""
    make, reference_step, _ = CELLS[name]
    tol = ref.BF16_TOL
    cell = make(dtype=jnp.bfloat16)
    ref.check_steps(cell, I, (3,), reference_step, rtol=tol, atol=tol)


def test_reset_placement_matters():
    """The two placements are different cells on the same params (sanity)."""
    after, before = rnnjax.gru(H), rnnjax.gru(H, reset_after=False)
    params, carry, xs = ref.setup(after, I, (3,))
    params_before = {k: v for k, v in params.items() if k != "b_hn"}
    _, y_after = after.step(params, carry, xs[0])
    _, y_before = before.step(params_before, carry, xs[0])
    assert not np.allclose(y_after, y_before, atol=1e-3)


def test_default_is_reset_after():
    assert rnnjax.gru(H).reset_after is True


@pytest.mark.parametrize("name", list(CELLS))
def test_param_shapes_and_default_init(name):
    make, _, G = CELLS[name]
    params = make().init(jax.random.key(0), I)
    expected = {"w_x": (I, G * H), "w_h": (H, G * H), "b": (G * H,)}
    if name == "gru_reset_after":
        expected["b_hn"] = (H,)
    assert {k: tuple(v.shape) for k, v in params.items()} == expected
    assert all(v.dtype == jnp.float32 for v in params.values())
    # Defaults: zero biases, one orthogonal matrix per gate block of w_h.
    np.testing.assert_array_equal(params["b"], 0.0)
    if "b_hn" in params:
        np.testing.assert_array_equal(params["b_hn"], 0.0)
    ref.assert_orthonormal_blocks(params["w_h"], G, "w_h")


@pytest.mark.parametrize("name", list(CELLS))
def test_custom_initialisers_are_honoured(name):
    make, _, G = CELLS[name]
    params = make(**ref.CUSTOM_INITS).init(jax.random.key(0), I)
    np.testing.assert_array_equal(params["w_x"], np.full((I, G * H), 0.25))
    np.testing.assert_array_equal(params["w_h"], np.full((H, G * H), -0.5))
    np.testing.assert_array_equal(params["b"], np.full((G * H,), 0.75))
    if "b_hn" in params:
        np.testing.assert_array_equal(params["b_hn"], np.full((H,), 0.75))


@pytest.mark.parametrize("batch_shape", ref.BATCH_SHAPES, ids=ref.BATCH_IDS)
@pytest.mark.parametrize("name", list(CELLS))
def test_initial_carry(name, batch_shape):
    carry = CELLS[name][0]().initial_carry(batch_shape)
    assert carry.shape == (*batch_shape, H)
    assert carry.dtype == jnp.float32
    np.testing.assert_array_equal(carry, 0.0)


@pytest.mark.parametrize("batch_shape", ref.BATCH_SHAPES, ids=ref.BATCH_IDS)
@pytest.mark.parametrize("name", list(CELLS))
def test_project_any_leading_dims(name, batch_shape):
    cell = CELLS[name][0]()
    params, _, xs = ref.setup(cell, I, batch_shape)
    z = cell.project(params, xs)  # (T, *B, I) -> (T, *B, G*H)
    p = ref.to64(params)
    expected = ref.to64(xs) @ p["w_x"] + p["b"]
    ref.assert_tree_close(z, expected, "project(xs)")
    for t in range(xs.shape[0]):
        ref.assert_tree_close(cell.project(params, xs[t]), expected[t], f"step {t}")

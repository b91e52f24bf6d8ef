"""MUT1, MUT2 and MUT3 (Jozefowicz, Zaremba & Sutskever 2015) against float64 NumPy.

The paper's equations (``x`` the embedded input with ``embed_input=True``)::

    MUT1: z = sigmoid(x W_xz + b_z)
          r = sigmoid(x W_xr + h W_hr + b_r)
          h' = tanh((r * h) W_hh + tanh(x) + b_h) * z + h * (1 - z)
    MUT2: z = sigmoid(x W_xz + h W_hz + b_z)
          r = sigmoid(x + h W_hr + b_r)
          h' = tanh((r * h) W_hh + x W_xh + b_h) * z + h * (1 - z)
    MUT3: z = sigmoid(x W_xz + tanh(h) W_hz + b_z)
          r = sigmoid(x W_xr + h W_hr + b_r)
          h' = tanh((r * h) W_hh + x W_xh + b_h) * z + h * (1 - z)

Blocks, as documented in ``rnnjax/cells/mut.py``: MUT1 ``w_x [z, r]``, ``w_h [r, h]``;
MUT2 ``w_x [z, h]``, ``w_h [z, r, h]``; MUT3 ``w_x [z, r, h]``, ``w_h [z, r, h]``;
``b [z, r, h]`` for all; ``w_e (I, H)`` when embedding.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from tests.cells import _reference as ref

# Their time is compiling small programs: XLA's cheaper passes (conftest).
pytestmark = pytest.mark.usefixtures("fast_compile")

H = 5
I_OTHER = 4  # an input size != H

sigmoid = ref.sigmoid


def mut1_step(p, h, x):
    wx, wh, b = (
        ref.split(p["w_x"], "zr"),
        ref.split(p["w_h"], "rh"),
        ref.split(p["b"], "zrh"),
    )
    z = sigmoid(x @ wx["z"] + b["z"])
    r = sigmoid(x @ wx["r"] + h @ wh["r"] + b["r"])
    h = np.tanh((r * h) @ wh["h"] + np.tanh(x) + b["h"]) * z + h * (1.0 - z)
    return h, h


def mut2_step(p, h, x):
    wx, wh, b = (
        ref.split(p["w_x"], "zh"),
        ref.split(p["w_h"], "zrh"),
        ref.split(p["b"], "zrh"),
    )
    z = sigmoid(x @ wx["z"] + h @ wh["z"] + b["z"])
    r = sigmoid(x + h @ wh["r"] + b["r"])
    h = np.tanh((r * h) @ wh["h"] + x @ wx["h"] + b["h"]) * z + h * (1.0 - z)
    return h, h


def mut3_step(p, h, x):
    wx, wh, b = (ref.split(p[k], "zrh") for k in ("w_x", "w_h", "b"))
    z = sigmoid(x @ wx["z"] + np.tanh(h) @ wh["z"] + b["z"])
    r = sigmoid(x @ wx["r"] + h @ wh["r"] + b["r"])
    h = np.tanh((r * h) @ wh["h"] + x @ wx["h"] + b["h"]) * z + h * (1.0 - z)
    return h, h


def embedded(step, embed_input):
    """The reference on the embedded input ``x W_e`` when ``embed_input``."""
    if not embed_input:
        return step
    return lambda p, h, x: step(p, h, x @ p["w_e"])


# name -> (factory, reference step, blocks of w_x, blocks of w_h)
VARIANTS = {
    "mut1": (rnnjax.mut1, mut1_step, 2, 2),
    "mut2": (rnnjax.mut2, mut2_step, 2, 3),
    "mut3": (rnnjax.mut3, mut3_step, 3, 3),
}

# (variant, embed_input, input size): every supported combination.
CONFIGS = [
    ("mut1", False, H),
    ("mut1", True, I_OTHER),
    ("mut1", True, H),
    ("mut2", False, H),
    ("mut2", True, I_OTHER),
    ("mut2", True, H),
    ("mut3", False, H),
    ("mut3", False, I_OTHER),
    ("mut3", True, I_OTHER),
]
CONFIG_IDS = [f"{v}-{'embed' if e else 'raw'}-I{i}" for v, e, i in CONFIGS]


@pytest.mark.parametrize("batch_shape", ref.BATCH_SHAPES, ids=ref.BATCH_IDS)
@pytest.mark.parametrize(
    ("variant", "embed_input", "input_size"), CONFIGS, ids=CONFIG_IDS
)
def test_matches_reference(variant, embed_input, input_size, batch_shape):
    factory, step, _, _ = VARIANTS[variant]
    cell = factory(H, embed_input=embed_input)
    ref.check_steps(cell, input_size, batch_shape, embedded(step, embed_input))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_bfloat16_compute(variant):
    """bfloat16 matrix products (embedding included), float32 carry and outputs."""
    factory, step, _, _ = VARIANTS[variant]
    cell = factory(H, embed_input=True, dtype=jnp.bfloat16)
    tol = ref.BF16_TOL
    ref.check_steps(cell, I_OTHER, (3,), embedded(step, True), rtol=tol, atol=tol)


@pytest.mark.parametrize("variant", ["mut1", "mut2"])
@pytest.mark.parametrize("input_size", [I_OTHER, H + 2])
def test_raw_input_needs_hidden_size(variant, input_size):
    cell = VARIANTS[variant][0](H)
    with pytest.raises(ValueError, match="embed_input"):
        cell.init(jax.random.key(0), input_size)


@pytest.mark.parametrize(
    ("variant", "embed_input", "input_size"), CONFIGS, ids=CONFIG_IDS
)
def test_param_shapes(variant, embed_input, input_size):
    factory, _, gx, gh = VARIANTS[variant]
    cell = factory(H, embed_input=embed_input)
    params = jax.eval_shape(lambda: cell.init(jax.random.key(0), input_size))
    x_size = H if embed_input else input_size
    expected = {"w_x": (x_size, gx * H), "w_h": (H, gh * H), "b": (3 * H,)}
    if embed_input:
        expected["w_e"] = (input_size, H)
    assert {k: tuple(v.shape) for k, v in params.items()} == expected
    assert all(v.dtype == jnp.float32 for v in params.values())


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_default_init(variant):
    """Zero biases, one orthogonal matrix per block of ``w_h``, Glorot ``w_x``."""
    factory, _, gx, gh = VARIANTS[variant]
    params = factory(H).init(jax.random.key(0), H)
    np.testing.assert_array_equal(params["b"], 0.0)
    ref.assert_orthonormal_blocks(params["w_h"], gh, "w_h")
    limit = np.sqrt(6.0 / (H + gx * H))
    assert np.all(np.abs(params["w_x"]) <= limit)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_custom_initialisers_are_honoured(variant):
    factory, _, gx, gh = VARIANTS[variant]
    cell = factory(H, embed_input=True, **ref.CUSTOM_INITS)
    params = cell.init(jax.random.key(0), I_OTHER)
    np.testing.assert_array_equal(params["w_e"], np.full((I_OTHER, H), 0.25))
    np.testing.assert_array_equal(params["w_x"], np.full((H, gx * H), 0.25))
    np.testing.assert_array_equal(params["w_h"], np.full((H, gh * H), -0.5))
    np.testing.assert_array_equal(params["b"], np.full((3 * H,), 0.75))


@pytest.mark.parametrize("batch_shape", ref.BATCH_SHAPES, ids=ref.BATCH_IDS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_initial_carry(variant, batch_shape):
    carry = VARIANTS[variant][0](H).initial_carry(batch_shape)
    assert carry.shape == (*batch_shape, H)
    assert carry.dtype == jnp.float32
    np.testing.assert_array_equal(carry, 0.0)


def project_reference(variant, p, x):
    """The input-side pre-activations ``[z, r, h]`` (no recurrent terms)."""
    if "w_e" in p:
        x = x @ p["w_e"]
    if variant == "mut1":
        wx = ref.split(p["w_x"], "zr")
        parts = [x @ wx["z"], x @ wx["r"], np.tanh(x)]
    elif variant == "mut2":
        wx = ref.split(p["w_x"], "zh")
        parts = [x @ wx["z"], x, x @ wx["h"]]
    else:
        parts = [x @ p["w_x"]]
    return np.concatenate(parts, -1) + p["b"]


@pytest.mark.parametrize("batch_shape", ref.BATCH_SHAPES, ids=ref.BATCH_IDS)
@pytest.mark.parametrize(
    ("variant", "embed_input", "input_size"), CONFIGS, ids=CONFIG_IDS
)
def test_project_any_leading_dims(variant, embed_input, input_size, batch_shape):
    cell = VARIANTS[variant][0](H, embed_input=embed_input)
    params, _, xs = ref.setup(cell, input_size, batch_shape)
    z = cell.project(params, xs)  # (T, *B, I) -> (T, *B, 3H)
    expected = project_reference(variant, ref.to64(params), ref.to64(xs))
    ref.assert_tree_close(z, expected, "project(xs)")
    for t in range(xs.shape[0]):
        ref.assert_tree_close(cell.project(params, xs[t]), expected[t], f"step {t}")

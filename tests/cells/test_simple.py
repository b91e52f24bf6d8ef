"""Elman RNN against float64 NumPy: ``h = act(x W_x + b + h W_h)``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from tests.cells import _reference as ref

I, H = 4, 5


def elman_reference(activation):
    act = ref.ACTIVATIONS[activation]

    def step(p, h, x):
        h = act(x @ p["w_x"] + p["b"] + h @ p["w_h"])
        return h, h

    return step


@pytest.mark.parametrize("batch_shape", ref.BATCH_SHAPES, ids=ref.BATCH_IDS)
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_matches_reference(activation, batch_shape):
    cell = rnnjax.simple_rnn(H, activation)
    ref.check_steps(cell, I, batch_shape, elman_reference(activation))


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_bfloat16_compute(activation):
    """bfloat16 matrix products, float32 params, carry and outputs."""
    cell = rnnjax.simple_rnn(H, activation, dtype=jnp.bfloat16)
    tol = ref.BF16_TOL
    ref.check_steps(cell, I, (3,), elman_reference(activation), rtol=tol, atol=tol)


def test_default_activation_is_tanh():
    assert rnnjax.simple_rnn(H).activation == "tanh"
    ref.check_steps(rnnjax.simple_rnn(H), I, (3,), elman_reference("tanh"))


@pytest.mark.parametrize("activation", ["sigmoid", "gelu", "Tanh"])
def test_unknown_activation_raises(activation):
    with pytest.raises(ValueError, match="activation"):
        rnnjax.simple_rnn(H, activation)


def test_param_shapes_and_default_init():
    params = rnnjax.simple_rnn(H).init(jax.random.key(0), I)
    assert set(params) == {"w_x", "w_h", "b"}
    assert params["w_x"].shape == (I, H)
    assert params["w_h"].shape == (H, H)
    assert params["b"].shape == (H,)
    assert all(v.dtype == jnp.float32 for v in params.values())
    np.testing.assert_array_equal(params["b"], np.zeros(H))
    ref.assert_orthonormal_blocks(params["w_h"], 1, "w_h")


def test_custom_initialisers_are_honoured():
    params = rnnjax.simple_rnn(H, **ref.CUSTOM_INITS).init(jax.random.key(0), I)
    np.testing.assert_array_equal(params["w_x"], np.full((I, H), 0.25))
    np.testing.assert_array_equal(params["w_h"], np.full((H, H), -0.5))
    np.testing.assert_array_equal(params["b"], np.full((H,), 0.75))


@pytest.mark.parametrize("batch_shape", ref.BATCH_SHAPES, ids=ref.BATCH_IDS)
def test_initial_carry(batch_shape):
    carry = rnnjax.simple_rnn(H).initial_carry(batch_shape)
    assert carry.shape == (*batch_shape, H)
    assert carry.dtype == jnp.float32
    np.testing.assert_array_equal(carry, 0.0)


@pytest.mark.parametrize("batch_shape", ref.BATCH_SHAPES, ids=ref.BATCH_IDS)
def test_project_any_leading_dims(batch_shape):
    cell = rnnjax.simple_rnn(H)
    params, _, xs = ref.setup(cell, I, batch_shape)
    z = cell.project(params, xs)  # (T, *B, I) -> (T, *B, H)
    p = ref.to64(params)
    expected = ref.to64(xs) @ p["w_x"] + p["b"]
    ref.assert_tree_close(z, expected, "project(xs)")
    for t in range(xs.shape[0]):
        ref.assert_tree_close(cell.project(params, xs[t]), expected[t], f"step {t}")

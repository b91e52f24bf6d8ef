"""``_linear.linearize`` (the compacted linearisation the fused kernel stores) must
equal ``jax.linearize``: values, tangents and transposes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax.kernels import _linear
from tests.conftest import randomize


def _rand(shape, seed):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


FUNCTIONS = {
    "product_chain": lambda x, y: (jnp.tanh(x) * jax.nn.sigmoid(y) * x, jnp.sin(x)),
    "broadcast_and_reduce": lambda x, y: (x - jnp.mean(x, -1, keepdims=True)) * y,
    "relu_select": lambda x, y: jax.nn.relu(x) + jnp.where(y > 0, x, 2.0 * y),
    "nested_jit": lambda x, y: jax.jit(lambda a, b: jnp.exp(a) / (1.0 + b * b))(x, y),
    "split_concat": lambda x, y: jnp.concatenate(jnp.split(x * y, 2, -1)[::-1], -1),
    "constant_output": lambda x, y: (x * y, jnp.ones_like(x)),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_equals_jax_linearize(name):
    f = FUNCTIONS[name]
    x, y, tx, ty = (_rand((3, 4), s) for s in range(4))
    want_out, want_lin = jax.linearize(f, x, y)
    got_out, program = _linear.linearize(f, x, y)
    np.testing.assert_allclose(got_out, want_out, rtol=1e-6)
    np.testing.assert_allclose(program(tx, ty), want_lin(tx, ty), rtol=1e-5, atol=1e-6)
    ct = jax.tree.map(lambda a: _rand(jnp.shape(a), 9), want_out)
    got_t = jax.linear_transpose(program, x, y)(ct)
    want_t = jax.linear_transpose(want_lin, x, y)(ct)
    np.testing.assert_allclose(got_t, want_t, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "cell, arrays",
    [(rnnjax.lstm(4), 6), (rnnjax.gru(4), 5)],
    ids=["lstm", "gru"],
)
def test_cell_step_is_compact(cell, arrays):
    """The per-step coefficients the fused kernel stores: fewer than JAX's."""
    params = randomize(cell.init(jax.random.key(0), 3))
    pw = cell.pointwise_params(params)
    carry = jax.tree.map(lambda a: _rand(a.shape, 1), cell.initial_carry((2,)))
    width = cell.rec_weight(params).shape[1]
    z, hw = _rand((2, width), 2), _rand((2, width), 3)
    f = lambda c, h: cell.update(pw, c, z, h)
    _, program = _linear.linearize(f, carry, hw)
    _, lin = jax.linearize(f, carry, hw)
    assert len(program.children) == arrays
    assert len(jax.make_jaxpr(lin)(carry, hw).consts) > arrays
    tangents = (jax.tree.map(lambda a: _rand(a.shape, 4), carry), _rand(hw.shape, 5))
    for got, want in zip(
        jax.tree.leaves(program(*tangents)),
        jax.tree.leaves(lin(*tangents)),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

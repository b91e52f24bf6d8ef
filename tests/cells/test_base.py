"""The cell contract: a cell written by a user, with only the Protocol or on the
fused-form base class, works with ``unroll``, the stacks and the fused path."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import rnnjax
from tests.conftest import randomize

I, H = 3, 4


@dataclasses.dataclass(frozen=True)
class LeakyRNN:
    """Protocol only: ``h' = (1 - a) h + a tanh(x W_x + h W_h)``."""

    hidden_size: int
    leak: float = 0.5

    def init(self, key, input_size):
        kx, kh = jax.random.split(key)
        return {
            "w_x": jax.random.normal(kx, (input_size, self.hidden_size)),
            "w_h": 0.3 * jax.random.normal(kh, (self.hidden_size, self.hidden_size)),
        }

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        return jnp.zeros((*batch_shape, self.hidden_size), dtype)

    def project(self, params, x):
        return x @ params["w_x"]

    def recur(self, params, carry, z, rec_mask=None):
        h = carry if rec_mask is None else carry * rec_mask
        new = (1 - self.leak) * carry + self.leak * jnp.tanh(z + h @ params["w_h"])
        return new, new

    def step(self, params, carry, x):
        return self.recur(params, carry, self.project(params, x))


@dataclasses.dataclass(frozen=True)
class LeakyFused(rnnjax.FusedFormCell):
    """The same cell on the fused-form base class: it gets the fused kernel."""

    leak: float = 0.5

    def _init(self, key, input_size):
        return self._dense_init(key, input_size, 1)

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        return self._zeros(batch_shape, self.hidden_size, dtype)

    def rec_input(self, carry):
        return carry

    def update(self, pw, carry, z, hw):
        new = (1 - self.leak) * carry + self.leak * jnp.tanh(z + hw)
        return new, new


def test_protocol_only_cell_unrolls_and_stacks():
    cell = LeakyRNN(H)
    assert isinstance(cell, rnnjax.Cell)
    params = cell.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (2, 5, I))
    carry, ys = rnnjax.unroll(cell, params, xs, seq_lengths=jnp.array([5, 2]))
    h, expected = jnp.zeros((2, H)), []
    for t in range(5):
        h_new, y = cell.step(params, h, xs[:, t])
        valid = jnp.array([[True], [t < 2]])
        h = jnp.where(valid, h_new, h)
        expected.append(jnp.where(valid, y, 0.0))
    np.testing.assert_allclose(carry, h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ys, jnp.stack(expected, 1), rtol=1e-5, atol=1e-6)
    model = rnnjax.stack(cell, num_layers=2, bidirectional=True, recurrent_dropout=0.2)
    mparams = model.init(jax.random.key(2), I)
    _, out = model.apply(mparams, xs, key=jax.random.key(3), training=True)
    assert out.shape == (2, 5, 2 * H)
    assert jax.jit(jax.grad(lambda p: jnp.sum(rnnjax.unroll(cell, p, xs)[1])))(params)


def test_fused_form_subclass_gets_the_fused_path():
    cell = LeakyFused(H)
    assert cell.fusable
    params = randomize(cell.init(jax.random.key(0), I))
    xs = jax.random.normal(jax.random.key(1), (2, 5, I))

    def loss(p, impl):
        options = rnnjax.UnrollOptions(impl=impl)
        return jnp.sum(jnp.sin(rnnjax.unroll(cell, p, xs, options=options)[1]))

    for impl in ("scan", "fused"):
        assert np.isfinite(loss(params, impl))
    np.testing.assert_allclose(loss(params, "fused"), loss(params, "scan"), rtol=1e-5)
    g_fused = jax.grad(loss)(params, "fused")
    g_scan = jax.grad(loss)(params, "scan")
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        g_fused,
        g_scan,
    )

"""The cell contract: a cell written by a user, with only the Protocol or on the
fused-form base class, works with ``unroll``, the stacks and the fused path."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax import kernels
from rnnjax.cells import base
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


# ----------------------------------------------------- capabilities by isinstance

# (factory, CellBase, FusedFormCell, fused form in this configuration, linear)
CAPABILITIES = {
    "simple_rnn": (lambda: rnnjax.simple_rnn(H), True, True, True, False),
    "lstm": (lambda: rnnjax.lstm(H), True, True, True, False),
    "lstm_peephole_fgr_ln": (
        lambda: rnnjax.lstm(
            H, peephole=True, full_gate_recurrence=True, layer_norm=True
        ),
        True,
        True,
        True,
        False,
    ),
    "lstm_proj": (lambda: rnnjax.lstm(H, proj_size=2), True, True, False, False),
    "gru": (lambda: rnnjax.gru(H), True, True, True, False),
    "gru_reset_before": (
        lambda: rnnjax.gru(H, reset_after=False),
        True,
        True,
        False,
        False,
    ),
    "mgu": (lambda: rnnjax.mgu(H), True, False, False, False),
    "mut1": (lambda: rnnjax.mut1(H), True, False, False, False),
    "mut2": (lambda: rnnjax.mut2(H), True, False, False, False),
    "mut3": (lambda: rnnjax.mut3(H), True, False, False, False),
    "min_gru": (lambda: rnnjax.min_gru(H), True, False, False, True),
    "min_lstm": (lambda: rnnjax.min_lstm(H, log_space=True), True, False, False, True),
    "conv_lstm": (
        lambda: rnnjax.conv_lstm(H, 3, peephole="channel"),
        True,
        False,
        False,
        False,
    ),
    "depth_gated_lstm": (
        lambda: rnnjax.depth_gated_lstm(H, 2),
        True,
        False,
        False,
        False,
    ),
    "clockwork_rnn": (lambda: rnnjax.clockwork_rnn(H, 2), True, False, False, False),
    "grid_lstm": (lambda: rnnjax.grid_lstm(H, 2), True, False, False, False),
    "slstm": (lambda: rnnjax.slstm(H), True, True, True, False),
    "protocol_only": (lambda: LeakyRNN(H), False, False, False, False),
    "fused_subclass": (lambda: LeakyFused(H), True, True, True, False),
}


@pytest.mark.parametrize("name", sorted(CAPABILITIES))
def test_capabilities_are_stated_by_the_class(name):
    """Every cell says what it can do by the classes it derives from, and the
    kernels' questions (``is_fusable``, ``has_linear_recurrence``) follow them."""
    make, is_base, is_fused_form, fusable, linear = CAPABILITIES[name]
    cell = make()
    assert isinstance(cell, rnnjax.Cell)
    assert isinstance(cell, rnnjax.CellBase) is is_base
    assert isinstance(cell, rnnjax.FusedFormCell) is is_fused_form
    assert isinstance(cell, rnnjax.LinearRecurrenceCell) is linear
    if is_fused_form:
        assert cell.fusable is fusable
    assert base.is_fusable(cell) is fusable
    assert kernels.has_linear_recurrence(cell) is linear


@dataclasses.dataclass(frozen=True)
class Impostor(LeakyRNN):
    """A Protocol-only cell carrying attributes that name capabilities: without the
    base classes they are not taken for them (nothing is sniffed)."""

    fusable: bool = True
    linear_recurrence: bool = True
    event_ndim: int = 3
    output_size: int = 99

    def rec_width(self, params):
        return 99

    def linear_coefficients(self, params, z):
        raise AssertionError("not a LinearRecurrenceCell: never called")


@pytest.mark.parametrize("impl", ["scan", "auto"])
@pytest.mark.parametrize("make", [LeakyRNN, Impostor], ids=["plain", "impostor"])
def test_protocol_only_cell_runs_with_scan_and_auto(make, impl):
    """A foreign cell with only the Protocol runs through ``unroll`` with the
    Protocol's defaults (features last, ``Y = H``, no separate bias), values and
    gradients equal to a Python loop over ``cell.step``."""
    cell = make(H)
    assert not isinstance(cell, rnnjax.CellBase)
    assert base.output_size(cell) == H and base.event_ndim(cell) == 1
    assert not base.is_fusable(cell)
    assert not kernels.has_linear_recurrence(cell)
    params = cell.init(jax.random.key(0), I)
    assert base.rec_width(cell, params) == H
    base.check_params(cell, params, I)  # nothing to check for a foreign cell
    xs = jax.random.normal(jax.random.key(1), (2, 5, I))
    z, bias = base.project_split(cell, params, xs)
    assert bias is None
    np.testing.assert_array_equal(z, cell.project(params, xs))
    options = rnnjax.UnrollOptions(impl=impl)

    def loss(p, loop):
        if loop:
            h, ys = cell.initial_carry((2,)), []
            for t in range(xs.shape[1]):
                h, y = cell.step(p, h, xs[:, t])
                ys.append(y)
            return jnp.sum(jnp.sin(jnp.stack(ys, 1))) + jnp.sum(h)
        carry, ys = rnnjax.unroll(cell, p, xs, options=options)
        assert ys.shape == (2, 5, H)
        return jnp.sum(jnp.sin(ys)) + jnp.sum(carry)

    np.testing.assert_allclose(loss(params, False), loss(params, True), rtol=1e-5)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        jax.jit(jax.grad(loss), static_argnums=1)(params, False),
        jax.grad(loss)(params, True),
    )


def test_missing_methods_are_an_error_at_construction():
    """A subclass that leaves out a method its base class asks for cannot be
    built (TypeError naming the method), before any compute."""

    @dataclasses.dataclass(frozen=True)
    class NoUpdate(rnnjax.FusedFormCell):
        def _init(self, key, input_size):
            return self._dense_init(key, input_size, 1)

        def initial_carry(self, batch_shape=(), dtype=jnp.float32):
            return self._zeros(batch_shape, self.hidden_size, dtype)

        def rec_input(self, carry):
            return carry

    @dataclasses.dataclass(frozen=True)
    class NoCoefficients(rnnjax.LinearRecurrenceCell):
        def _init(self, key, input_size):
            return {}

        def initial_carry(self, batch_shape=(), dtype=jnp.float32):
            return self._zeros(batch_shape, self.hidden_size, dtype)

    with pytest.raises(TypeError, match="update"):
        NoUpdate(H)
    with pytest.raises(TypeError, match="linear_coefficients"):
        NoCoefficients(H)

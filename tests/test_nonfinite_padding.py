"""NaN and inf in padded steps (past ``seq_lengths``) never reach the derivatives:
every path gives the gradients of zero padding (PyTorch's packed sequences stay
finite too). The inputs of padded steps are zeroed once, in ``unroll``, before the
input projection."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax.kernels import Pallas, cudnn

# Their time is compiling small programs: XLA's cheaper passes (conftest).
pytestmark = pytest.mark.usefixtures("fast_compile")

B, T, I, H = 2, 5, 3, 4
LENGTHS = jnp.array([3, 5])


def _inputs():
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    pad = jnp.arange(T)[None, :, None] >= LENGTHS[:, None, None]
    poison = jnp.where(jnp.arange(I) % 2 == 0, jnp.nan, jnp.inf)[None, None, :]
    return jnp.where(pad, 0.0, xs), jnp.where(pad, poison, xs)


def _loss(run):
    """Sum of every output and final carry leaf, weighted so that each counts."""

    def loss(params, xs):
        carry, ys = run(params, xs)
        w = jnp.linspace(0.5, 1.5, ys.size).reshape(ys.shape)
        leaves = jax.tree.leaves(carry)
        return jnp.sum(ys * w) + sum(jnp.sum(jnp.square(c)) for c in leaves)

    return loss


def _check(run, params):
    """Gradients (params and xs) with poisoned padding equal those with zeros;
    the xs gradient is zero at padded steps. One compilation for both calls."""
    zero, poisoned = _inputs()
    grad = jax.jit(jax.grad(_loss(run), argnums=(0, 1)))
    want, got = grad(params, zero), grad(params, poisoned)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
    d_xs = got[1]
    pad = np.arange(T)[None, :] >= np.asarray(LENGTHS)[:, None]
    assert np.all(np.asarray(d_xs)[pad] == 0)


# name: (cell, options, reverse); every case with resets.
CASES = {
    "scan": (rnnjax.lstm(H), dict(impl="scan"), True),
    "fused": (rnnjax.lstm(H), dict(impl="fused"), False),
    "auto": (rnnjax.gru(H), dict(impl="auto"), True),
    "associative": (rnnjax.min_gru(H), dict(impl="associative"), True),
    "pallas": (rnnjax.lstm(H), dict(impl=Pallas(interpret=True)), True),
    "remat_step": (rnnjax.lstm(H), dict(impl="fused", remat="step"), False),
    "remat_chunk": (rnnjax.gru(H), dict(remat="chunk", chunk_size=2), True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_unroll_gradients_ignore_nonfinite_padding(name):
    cell, opts, reverse = CASES[name]
    params = cell.init(jax.random.key(0), I)
    options = rnnjax.UnrollOptions(**opts)
    resets = jnp.zeros((B, T), bool).at[1, 2].set(True)

    def run(p, xs):
        return rnnjax.unroll(
            cell,
            p,
            xs,
            seq_lengths=LENGTHS,
            reverse=reverse,
            resets=resets,
            options=options,
        )

    _check(run, params)


def test_bidirectional_stack_gradients_ignore_nonfinite_padding():
    model = rnnjax.stack(rnnjax.lstm(H), num_layers=2, bidirectional=True)
    params = model.init(jax.random.key(0), I)

    def run(p, xs):
        return model.apply(p, xs, seq_lengths=LENGTHS)

    _check(run, params)


def test_cudnn_gradients_ignore_nonfinite_padding(monkeypatch):
    """``impl="cudnn"`` (no resets; its own path in ``unroll``): on a GPU the cuDNN
    call, elsewhere JAX's plain reference in its place (as
    ``tests/kernels/test_cudnn.py``), which alone gives NaN gradients."""
    if not cudnn.available():
        monkeypatch.setattr(cudnn, "lstm_call", cudnn.reference_lstm)
    cell = rnnjax.lstm(H)
    options = rnnjax.UnrollOptions(impl="cudnn")

    def run(p, xs):
        kw = dict(seq_lengths=LENGTHS, reverse=True, options=options)
        return rnnjax.unroll(cell, p, xs, **kw)

    _check(run, cell.init(jax.random.key(0), I))

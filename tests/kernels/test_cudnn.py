"""``impl="cudnn"`` on a CPU: everything around the cuDNN call (the weight
packing, lengths, empty sequences, reversal, batch shapes, layers) with
``jax.experimental.rnn``'s own reference in its place, against ``impl="scan"``;
and the clear errors. Its values on a GPU are checked by ``benchmarks/gpu.py``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax.kernels import cudnn
from tests.kernels._compare import (
    assert_tree_close,
    jit_fast,
    run_impl,
    values_and_vjp,
)


@pytest.fixture
def reference_cudnn(monkeypatch):
    """The cuDNN call replaced by its plain-JAX reference (same weight layout)."""
    monkeypatch.setattr(cudnn, "lstm_call", cudnn.reference_lstm)


def _problem(batch, T=6, I=3, H=5, seed=0):
    cell = rnnjax.lstm(H)
    params = cell.init(jax.random.key(seed), I)
    r = np.random.default_rng(seed)
    xs = jnp.asarray(r.standard_normal((*batch, T, I)), jnp.float32)
    carry = jax.tree.map(lambda a: a + 0.3, cell.initial_carry(batch))
    return cell, params, xs, carry


@pytest.mark.usefixtures("reference_cudnn")
@pytest.mark.parametrize(
    ("batch", "lengths", "reverse"),
    [
        ((4,), [6, 3, 0, 5], False),
        ((4,), [6, 3, 0, 5], True),
        ((2, 2), None, True),
        ((), None, False),
        ((0,), None, True),
    ],
)
def test_values_and_gradients_equal_scan(batch, lengths, reverse):
    cell, params, xs, carry = _problem(batch)
    kw = dict(reverse=reverse)
    if lengths is not None:
        kw["seq_lengths"] = jnp.asarray(lengths).reshape(batch)
    got, want = run_impl(cell, "cudnn", **kw), run_impl(cell, "scan", **kw)
    primals = (params, xs, carry)
    assert_tree_close(
        jit_fast(lambda *a: values_and_vjp(got, a, 1))(*primals),
        jit_fast(lambda *a: values_and_vjp(want, a, 1))(*primals),
    )


@pytest.mark.usefixtures("reference_cudnn")
def test_time_major_equals_scan():
    cell, params, xs, carry = _problem((3,))
    xs = jnp.moveaxis(xs, 1, 0)
    kw = dict(time_major=True, reverse=True, seq_lengths=jnp.array([6, 2, 4]))
    primals = (params, xs, carry)
    assert_tree_close(
        jit_fast(run_impl(cell, "cudnn", **kw))(*primals),
        jit_fast(run_impl(cell, "scan", **kw))(*primals),
    )


@pytest.mark.usefixtures("reference_cudnn")
def test_bidirectional_stack_equals_scan():
    model = rnnjax.stack([rnnjax.lstm(4), rnnjax.lstm(4)], bidirectional=True)
    params = model.init(jax.random.key(0), 3)
    xs = jnp.asarray(np.random.default_rng(0).standard_normal((3, 5, 3)), jnp.float32)
    lengths = jnp.array([5, 2, 4])

    def run(impl):
        options = rnnjax.UnrollOptions(impl=impl)
        return jax.jit(
            lambda p: model.apply(p, xs, seq_lengths=lengths, options=options)
        )(params)

    assert_tree_close(run("cudnn"), run("scan"))


@pytest.mark.parametrize(
    ("cell", "kwargs", "match"),
    [
        (rnnjax.gru(4), {}, "rnnjax.lstm"),
        (rnnjax.lstm(4, peephole=True), {}, "peephole"),
        (rnnjax.lstm(4, dtype=jnp.bfloat16), {}, "float32"),
        (rnnjax.lstm(4), {"resets": jnp.zeros((2, 3), bool)}, "resets"),
        (rnnjax.lstm(4), {"rec_mask": jnp.ones((2, 4))}, "rec_mask"),
    ],
)
def test_what_it_cannot_run_is_refused_naming_impl(cell, kwargs, match):
    params = cell.init(jax.random.key(0), 2)
    xs = jnp.ones((2, 3, 2))
    options = rnnjax.UnrollOptions(impl="cudnn")
    with pytest.raises(ValueError, match=rf"impl: 'cudnn'.*{match}"):
        rnnjax.unroll(cell, params, xs, options=options, **kwargs)


def test_remat_is_refused():
    cell = rnnjax.lstm(4)
    params = cell.init(jax.random.key(0), 2)
    options = rnnjax.UnrollOptions(impl="cudnn", remat="step")
    with pytest.raises(ValueError, match=r"impl: 'cudnn'.*remat"):
        rnnjax.unroll(cell, params, jnp.ones((2, 3, 2)), options=options)


@pytest.mark.skipif(cudnn.available(), reason="this process has a GPU")
def test_without_a_gpu_it_says_so():
    cell = rnnjax.lstm(4)
    params = cell.init(jax.random.key(0), 2)
    options = rnnjax.UnrollOptions(impl="cudnn")
    with pytest.raises(ValueError, match="impl: 'cudnn' needs a CUDA GPU"):
        rnnjax.unroll(cell, params, jnp.ones((2, 3, 2)), options=options)


def test_it_is_no_recurrence_of_projected_inputs():
    with pytest.raises(ValueError, match="impl: 'cudnn' runs whole layers"):
        rnnjax.kernels.select(rnnjax.lstm(4), "cudnn")


def test_pack_weights_matches_the_documented_layout():
    cell = rnnjax.lstm(2)
    params = cell.init(jax.random.key(0), 3)
    packed = cudnn.pack_weights(params, 3)
    w_ih, w_hh, b_ih, b_hh = jax.experimental.rnn.unpack_lstm_weights(
        packed, 3, 2, 1, False
    )
    np.testing.assert_array_equal(w_ih[0], params["w_x"].T)
    np.testing.assert_array_equal(w_hh[0], params["w_h"].T)
    np.testing.assert_array_equal(b_ih[0], params["b"])
    np.testing.assert_array_equal(b_hh[0], np.zeros(8))

"""The associative recurrence must equal the plain ``lax.scan`` of the same cell.

Values and derivatives (reverse mode w.r.t. every parameter leaf, the inputs and the
initial carry; forward mode), under ``vmap`` and ``jit``, for minGRU and minLSTM in
both variants, with lengths, reversal, resets and recurrent masks, batch shapes
``()``, ``(3,)`` and ``(2, 3)``, and ``T`` of 0, 1 and several hundred.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax import kernels
from tests.conftest import randomize
from tests.kernels._compare import (
    assert_same_derivatives,
    assert_tree_close,
    jit_fast,
    random_like,
    run_impl,
    values_and_vjp,
)

H, IN, T = 4, 3, 6

LINEAR = {
    "min_gru": lambda: rnnjax.min_gru(H),
    "min_gru_log": lambda: rnnjax.min_gru(H, log_space=True),
    "min_lstm": lambda: rnnjax.min_lstm(H),
    "min_lstm_log": lambda: rnnjax.min_lstm(H, log_space=True),
}


# ---------------------------------------------------------------------- helpers


def _problem(cell, batch_shape, seed, *, num_steps=T, lengths=False, resets=False,
             rec_mask=False):  # fmt: skip
    """Random params, inputs, initial carry and the optional arguments."""
    r = np.random.default_rng(seed)
    params = randomize(cell.init(jax.random.key(seed), IN), seed=seed, scale=1.0)
    xs = jnp.asarray(r.standard_normal((*batch_shape, num_steps, IN)), jnp.float32)
    carry = jnp.asarray(r.standard_normal((*batch_shape, H)), jnp.float32)
    kwargs = {}
    if lengths:
        n = int(np.prod(batch_shape, dtype=int))
        lens = np.array([0, num_steps, 2, num_steps - 1, 1, 3][:n])
        lens = lens if n > 1 else np.array([num_steps - 2])
        lens = np.clip(lens, 0, num_steps).reshape(batch_shape)
        kwargs["seq_lengths"] = jnp.asarray(lens, jnp.int32)
    if resets:
        kwargs["resets"] = jnp.asarray(r.random((*batch_shape, num_steps)) < 0.3)
    if rec_mask:
        mask = (r.random((*batch_shape, H)) < 0.7) / 0.7
        kwargs["rec_mask"] = jnp.asarray(mask, jnp.float32)
    return params, xs, carry, kwargs


def _check_equal(cell, batch_shape, seed=0, reverse=False, num_steps=T, **options):
    params, xs, carry, kwargs = _problem(
        cell, batch_shape, seed, num_steps=num_steps, **options
    )

    def results(impl):
        f = run_impl(cell, impl, reverse=reverse, **kwargs)
        return jit_fast(lambda *a: values_and_vjp(f, a, seed + 1))(params, xs, carry)

    got = results("associative")
    assert_tree_close(got, results("scan"))
    return got


# ---------------------------------------------------------------------- values, vjp


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_everything_at_once(name):
    """Lengths (zero, full, partial), reversal, resets and a recurrent mask."""
    _check_equal(
        LINEAR[name](),
        (2, 3),
        seed=2,
        lengths=True,
        reverse=True,
        resets=True,
        rec_mask=True,
    )


# Each option on its own (batch shape ``(3,)``), alternating the two cells.
OPTIONS = {
    "plain": ("min_gru", {}),
    "lengths": ("min_lstm", {"lengths": True}),
    "reverse": ("min_gru", {"reverse": True}),
    "resets": ("min_lstm", {"resets": True}),
    "rec_mask": ("min_lstm", {"rec_mask": True}),
}


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_options(option):
    name, kwargs = OPTIONS[option]
    _check_equal(LINEAR[name](), (3,), seed=3, **kwargs)


@pytest.mark.parametrize("batch_shape", [(), (3,), (2, 3)], ids=["B0", "B3", "B2x3"])
def test_batch_shapes(batch_shape):
    _check_equal(LINEAR["min_lstm"](), batch_shape, seed=4, lengths=True, resets=True)


@pytest.mark.parametrize("num_steps", [0, 1])
@pytest.mark.parametrize("name", ["min_gru", "min_lstm"])
def test_short_sequences(name, num_steps):
    """``T = 1``, and ``T = 0`` (the carry comes back unchanged, no outputs)."""
    options = {"lengths": num_steps > 0, "resets": True}
    (final, ys), _ = _check_equal(
        LINEAR[name](), (2,), seed=5, num_steps=num_steps, **options
    )
    assert ys.shape == (2, num_steps, H)
    if num_steps == 0:  # the initial carry, unchanged
        _, _, carry, _ = _problem(LINEAR[name](), (2,), 5, num_steps=0)
        np.testing.assert_array_equal(final, carry)


def test_long_sequence():
    """Several hundred steps with gates near 0 and 1 (products of ``a`` underflow
    in the scan): still the sequential result."""
    cell = rnnjax.min_lstm(H)
    params, xs, carry, kwargs = _problem(cell, (2,), 6, num_steps=700, resets=True)
    params = jax.tree.map(lambda p: 3.0 * p, params)
    got, want = (
        jit_fast(run_impl(cell, impl, **kwargs))(params, xs, carry)
        for impl in ("associative", "scan")
    )
    assert_tree_close(got, want, rtol=2e-5)


def test_bias_added_by_the_step():
    """``bias=`` equals adding it to ``zs`` first, values, VJPs and JVPs."""
    cell = LINEAR["min_gru"]()
    params, _, carry, _ = _problem(cell, (3,), 7)
    zs = jnp.asarray(np.random.default_rng(8).standard_normal((T, 3, 2 * H)))
    zs = zs.astype(jnp.float32)
    valid = jnp.arange(T)[:, None] < jnp.array([T, 2, 0])[None]

    def run(recurrence, with_bias):
        def f(p, z, b, c):
            if with_bias:
                inputs = kernels.StepInputs(z, bias=b, valid=valid)
            else:
                inputs = kernels.StepInputs(z + b[None, None], valid=valid)
            return recurrence(cell, p, c, inputs)

        return f

    primals = (params, zs, params["b"], carry)
    tangents = random_like(primals, 9)
    got = run(kernels.associative_recurrence, True)
    want = run(kernels.scan_recurrence, False)
    assert_same_derivatives(got, want, primals, tangents, seed=10, values=False)


# ---------------------------------------------------------------------- transforms


@pytest.mark.parametrize("name", ["min_gru_log", "min_lstm"])
def test_jvp(name):
    cell = LINEAR[name]()
    params, xs, carry, kwargs = _problem(cell, (3,), 11, lengths=True, resets=True)
    primals = (params, xs, carry)
    tangents = random_like(primals, 12)

    def jvp(impl):
        f = run_impl(cell, impl, reverse=True, **kwargs)
        return jit_fast(lambda p, t: jax.jvp(f, p, t))(primals, tangents)

    assert_tree_close(jvp("associative"), jvp("scan"))


@pytest.mark.parametrize("name", ["min_gru", "min_lstm_log"])
def test_vmap(name):
    """vmap over a batch of parameter sets and inputs, of values and gradients."""
    cell = LINEAR[name]()
    problems = [_problem(cell, (2,), s, lengths=True) for s in (13, 14)]
    params, xs, carry = jax.tree.map(
        lambda *t: jnp.stack(t), *[p[:3] for p in problems]
    )
    lengths = problems[0][3]["seq_lengths"]

    def loss(impl, p, x, c):
        out = rnnjax.unroll(
            cell,
            p,
            x,
            carry=c,
            seq_lengths=lengths,
            options=rnnjax.UnrollOptions(impl=impl),
        )
        return sum(jnp.sum(jnp.tanh(leaf)) for leaf in jax.tree.leaves(out))

    def batched(impl):
        f = jax.value_and_grad(lambda *a: loss(impl, *a), argnums=(0, 1, 2))
        return jit_fast(jax.vmap(f))(params, xs, carry)

    assert_tree_close(batched("associative"), batched("scan"))


def test_rec_mask_derivative():
    """The mask is an ordinary input: its cotangent matches too."""
    cell = LINEAR["min_gru"]()
    params, xs, carry, kwargs = _problem(cell, (3,), 15, rec_mask=True)

    def grad(impl):
        def f(mask):
            _, ys = rnnjax.unroll(
                cell,
                params,
                xs,
                carry=carry,
                rec_mask=mask,
                options=rnnjax.UnrollOptions(impl=impl),
            )
            return jnp.sum(jnp.sin(ys))

        return jit_fast(jax.grad(f))(kwargs["rec_mask"])

    assert_tree_close(grad("associative"), grad("scan"))


# ---------------------------------------------------------------------- dispatch


def test_select():
    """``auto`` picks the associative scan for linear cells, the fused kernel for
    fused-form cells and the scan otherwise; ``scan`` forces the sequential one."""
    select = kernels.select
    assert select(rnnjax.min_gru(H), "auto") is kernels.associative_recurrence
    assert select(rnnjax.min_lstm(H), "auto") is kernels.associative_recurrence
    assert select(rnnjax.min_lstm(H), "scan") is kernels.scan_recurrence
    assert select(rnnjax.lstm(H), "auto") is kernels.fused_recurrence
    assert select(rnnjax.mgu(H), "auto") is kernels.scan_recurrence
    assert "associative" in kernels.IMPLS
    assert kernels.has_linear_recurrence(rnnjax.min_gru(H))
    assert not kernels.has_linear_recurrence(rnnjax.gru(H))


@pytest.mark.parametrize("make", [lambda: rnnjax.gru(H), lambda: rnnjax.mgu(H)])
def test_associative_rejects_other_cells(make):
    cell = make()
    params = cell.init(jax.random.key(0), IN)
    xs = jnp.zeros((2, T, IN))
    with pytest.raises(ValueError, match=r"impl.*associative"):
        rnnjax.unroll(
            cell, params, xs, options=rnnjax.UnrollOptions(impl="associative")
        )
    with pytest.raises(ValueError, match="impl"):
        kernels.associative_recurrence(
            cell,
            params,
            cell.initial_carry((2,)),
            kernels.StepInputs(jnp.zeros((T, 2, 3 * H))),
        )


def test_stack_auto_equals_scan():
    """A stack of minimal cells with recurrent dropout: ``auto`` (the associative
    scan) equals ``scan``, values and gradients."""
    stack = rnnjax.stack([rnnjax.min_gru(H), rnnjax.min_lstm(H)], recurrent_dropout=0.3)
    params = randomize(stack.init(jax.random.key(0), IN), seed=16)
    xs = jax.random.normal(jax.random.key(1), (2, T, IN))
    lengths = jnp.array([T, 3])
    key = jax.random.key(2)

    def run(impl):
        def loss(p, x):
            options = rnnjax.UnrollOptions(impl=impl)
            _, ys = stack.apply(
                p, x, seq_lengths=lengths, key=key, training=True, options=options
            )
            return jnp.sum(jnp.sin(ys)), ys

        return jit_fast(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(
            params, xs
        )

    got = run("auto")
    assert got[0][1].shape == (2, T, H)
    assert_tree_close(got, run("scan"))

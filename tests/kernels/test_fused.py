"""The fused recurrence must equal the plain ``lax.scan`` of the same cell.

Values and derivatives (reverse mode w.r.t. every parameter leaf, the inputs and the
initial carry; forward mode), under ``vmap``, ``checkpoint`` and ``jit``, for every
fused-form cell and option, with lengths, reversal, resets and recurrent masks.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax import kernels
from rnnjax.kernels import fused as fused_module
from tests.conftest import randomize
from tests.kernels._compare import (
    assert_same_derivatives,
    assert_tree_close,
    jit_fast,
    random_like,
    run_impl,
    values_and_vjp,
)

H, IN, T = 4, 3, 5
# Tests compile many small programs; XLA's cheaper backend passes cut the time.

FUSABLE = {
    "simple_tanh": lambda: rnnjax.simple_rnn(H),
    "simple_relu": lambda: rnnjax.simple_rnn(H, "relu"),
    "lstm": lambda: rnnjax.lstm(H),
    "lstm_peephole": lambda: rnnjax.lstm(H, peephole=True),
    "lstm_coupled": lambda: rnnjax.lstm(H, coupled=True),
    "lstm_no_input_gate": lambda: rnnjax.lstm(H, input_gate=False),
    "lstm_no_forget_gate": lambda: rnnjax.lstm(H, forget_gate=False),
    "lstm_no_output_gate": lambda: rnnjax.lstm(H, output_gate=False),
    "lstm_no_input_act": lambda: rnnjax.lstm(H, input_activation=None),
    "lstm_no_output_act": lambda: rnnjax.lstm(H, output_activation=None),
    "lstm_fgr": lambda: rnnjax.lstm(H, full_gate_recurrence=True),
    "lstm_layer_norm": lambda: rnnjax.lstm(H, layer_norm=True),
    "lstm_combo": lambda: rnnjax.lstm(
        H,
        peephole=True,
        coupled=True,
        full_gate_recurrence=True,
        layer_norm=True,
        output_activation="sigmoid",
    ),
    "gru": lambda: rnnjax.gru(H),
}


# ---------------------------------------------------------------------- helpers


def _problem(
    cell,
    batch_shape,
    seed,
    *,
    lengths=False,
    resets=False,
    rec_mask=False,
    dtype=jnp.float32,
):
    """Random params, inputs, initial carry and the optional arguments."""
    r = np.random.default_rng(seed)
    params = randomize(cell.init(jax.random.key(seed), IN), seed=seed)
    xs = jnp.asarray(r.standard_normal((*batch_shape, T, IN)), dtype)
    carry = jax.tree.map(
        lambda a: jnp.asarray(0.5 * r.standard_normal(a.shape), a.dtype),
        cell.initial_carry(batch_shape),
    )
    kwargs = {}
    if lengths:
        n = int(np.prod(batch_shape, dtype=int))
        # zero, full and partial lengths whenever the batch has room for them
        lens = np.array([0, T, 2, T - 1, 1, T][:n] if n > 1 else [T - 2])
        kwargs["seq_lengths"] = jnp.asarray(lens.reshape(batch_shape), jnp.int32)
    if resets:
        kwargs["resets"] = jnp.asarray(r.random((*batch_shape, T)) < 0.3)
    if rec_mask:
        k = cell.rec_input(cell.initial_carry(batch_shape)).shape[-1]
        mask = (r.random((*batch_shape, k)) < 0.7) / 0.7
        kwargs["rec_mask"] = jnp.asarray(mask, jnp.float32)
    return params, xs, carry, kwargs


def _check_equal(cell, batch_shape, seed=0, reverse=False, **options):
    params, xs, carry, kwargs = _problem(cell, batch_shape, seed, **options)
    fused = jit_fast(
        lambda *a: values_and_vjp(
            run_impl(cell, "fused", reverse=reverse, **kwargs), a, seed + 1
        )
    )
    scan = jit_fast(
        lambda *a: values_and_vjp(
            run_impl(cell, "scan", reverse=reverse, **kwargs), a, seed + 1
        )
    )
    assert_tree_close(fused(params, xs, carry), scan(params, xs, carry))


# ---------------------------------------------------------------------- values, vjp


@pytest.mark.parametrize("name", sorted(FUSABLE))
def test_plain(name):
    """No lengths, resets or mask; one unbatched sequence."""
    _check_equal(FUSABLE[name](), (), seed=1)


@pytest.mark.parametrize("name", sorted(FUSABLE))
def test_everything_at_once(name):
    """Lengths (with zeros and full), reversal, resets and a recurrent mask."""
    _check_equal(
        FUSABLE[name](),
        (2, 3),
        seed=2,
        lengths=True,
        reverse=True,
        resets=True,
        rec_mask=True,
    )


OPTIONS = {
    "lengths": {"lengths": True},
    "reverse": {"reverse": True},
    "resets": {"resets": True},
    "rec_mask": {"rec_mask": True},
}


@pytest.mark.parametrize("name", ["lstm", "gru"])
@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_options(name, option):
    """Each option on its own, batch shape ``(3,)``."""
    _check_equal(FUSABLE[name](), (3,), seed=3, **OPTIONS[option])


def test_rec_mask_derivative():
    """The mask is an ordinary input: its cotangent matches too."""
    cell = FUSABLE["lstm_fgr"]()
    params, xs, carry, kwargs = _problem(cell, (3,), 4, rec_mask=True)

    def g(impl):
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

        return jax.grad(f)(kwargs["rec_mask"])

    assert_tree_close(g("fused"), g("scan"))


# ---------------------------------------------------------------------- transforms


@pytest.mark.parametrize("name", ["lstm_combo", "gru", "simple_relu"])
def test_jvp(name):
    cell = FUSABLE[name]()
    params, xs, carry, kwargs = _problem(cell, (3,), 5, lengths=True, resets=True)
    primals = (params, xs, carry)
    tangents = random_like(primals, 6)

    def jvp(impl):
        return jit_fast(lambda p, t: jax.jvp(run_impl(cell, impl, **kwargs), p, t))(
            primals, tangents
        )

    assert_tree_close(jvp("fused"), jvp("scan"))


def test_jvp_of_auto_and_grad_of_jvp():
    """Forward mode through impl="auto", and reverse-over-forward."""
    cell = FUSABLE["lstm"]()
    params, xs, carry, _ = _problem(cell, (2,), 7)
    dxs = random_like(xs, 8)

    def directional(impl, p):
        f = lambda x: rnnjax.unroll(
            cell, p, x, carry=carry, options=rnnjax.UnrollOptions(impl=impl)
        )[1]
        return jnp.sum(jax.jvp(f, (xs,), (dxs,))[1] ** 2)

    for impl in ("auto", "fused"):
        assert_tree_close(
            jit_fast(jax.value_and_grad(lambda p, i=impl: directional(i, p)))(params),
            jit_fast(jax.value_and_grad(lambda p: directional("scan", p)))(params),
        )


@pytest.mark.parametrize("name", ["lstm_peephole", "gru"])
def test_vmap(name):
    """vmap over a batch of parameter sets and inputs, of values and gradients."""
    cell = FUSABLE[name]()
    problems = [_problem(cell, (2,), s, lengths=True) for s in (9, 10)]
    stack = lambda *t: jnp.stack(t)
    params, xs, carry = jax.tree.map(stack, *[p[:3] for p in problems])
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

    assert_tree_close(batched("fused"), batched("scan"))


@pytest.mark.parametrize("name", ["lstm_layer_norm", "gru"])
def test_checkpoint(name):
    cell = FUSABLE[name]()
    params, xs, carry, kwargs = _problem(cell, (3,), 11, resets=True)

    def grads(impl):
        f = jax.checkpoint(run_impl(cell, impl, **kwargs))
        loss = lambda *a: jnp.sum(jnp.cos(f(*a)[1]))
        return jit_fast(jax.grad(loss, argnums=(0, 1, 2)))(params, xs, carry)

    assert_tree_close(grads("fused"), grads("scan"))


# ---------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("name", ["lstm", "lstm_combo", "gru"])
def test_bfloat16_compute(name):
    cell = FUSABLE[name]().__class__(
        **{**FUSABLE[name]().__dict__, "dtype": jnp.bfloat16}
    )
    params, xs, carry, kwargs = _problem(cell, (3,), 12, lengths=True)

    def run(impl):
        f = run_impl(cell, impl, **kwargs)
        grads = jax.grad(lambda *a: jnp.sum(f(*a)[1]), argnums=(0, 1, 2))
        return jit_fast(lambda *a: (f(*a), grads(*a)))(params, xs, carry)

    (out_f, grads_f), (out_s, _) = run("fused"), run("scan")
    assert jax.tree.map(lambda a: a.dtype, out_f) == jax.tree.map(
        lambda a: a.dtype, out_s
    )
    assert_tree_close(out_f, out_s, rtol=2e-2)
    for leaf in jax.tree.leaves(grads_f):
        assert np.all(np.isfinite(np.asarray(leaf, np.float32)))


# ---------------------------------------------------------------------- bias


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_bias_added_by_the_step(name):
    """``bias=`` (the projection's bias, added inside the step) equals adding it to
    ``zs`` first, fused and scan, values, VJPs and JVPs."""
    cell = FUSABLE[name]()
    params, _, carry, _ = _problem(cell, (3,), 14)
    width = cell.rec_weight(params).shape[1]
    zs = jnp.asarray(np.random.default_rng(15).standard_normal((T, 3, width)))
    zs = zs.astype(jnp.float32)
    bias = params["b"]
    valid = jnp.arange(T)[:, None] < jnp.array([T, 2, 0])[None]

    def run(recurrence, with_bias):
        def f(p, z, b, c):
            if with_bias:
                inputs = kernels.StepInputs(z, bias=b, valid=valid)
            else:
                inputs = kernels.StepInputs(z + b[None, None], valid=valid)
            return recurrence(cell, p, c, inputs)

        return f

    primals = (params, zs, bias, carry)
    tangents = random_like(primals, 16)
    want = run(kernels.scan_recurrence, False)
    for got in (
        run(kernels.fused_recurrence, True),
        run(kernels.scan_recurrence, True),
    ):
        assert_same_derivatives(got, want, primals, tangents, seed=17, values=False)


# ---------------------------------------------------------------------- errors, cache


def test_empty_sequence():
    cell = FUSABLE["lstm"]()
    params, _, carry, _ = _problem(cell, (2,), 13)
    xs = jnp.zeros((2, 0, IN))
    fused = rnnjax.unroll(
        cell, params, xs, carry=carry, options=rnnjax.UnrollOptions(impl="fused")
    )
    assert_tree_close(
        fused,
        rnnjax.unroll(
            cell, params, xs, carry=carry, options=rnnjax.UnrollOptions(impl="scan")
        ),
    )


@pytest.mark.parametrize(
    "make",
    [lambda: rnnjax.gru(H, reset_after=False), lambda: rnnjax.lstm(H, proj_size=2)],
    ids=["gru_reset_before", "lstm_proj"],
)
def test_fused_rejects_non_fusable(make):
    cell = make()
    params = cell.init(jax.random.key(0), IN)
    xs = jnp.zeros((2, T, IN))
    with pytest.raises(ValueError, match="impl"):
        rnnjax.unroll(cell, params, xs, options=rnnjax.UnrollOptions(impl="fused"))
    # "auto" falls back to the scan
    rnnjax.unroll(cell, params, xs, options=rnnjax.UnrollOptions(impl="auto"))


@pytest.mark.parametrize("impl", ["fused", "auto"])
def test_no_recompile(impl):
    traces = []

    def loss(params, xs, cell):
        traces.append(1)  # Python side effect: runs once per trace
        return jnp.sum(
            rnnjax.unroll(cell, params, xs, options=rnnjax.UnrollOptions(impl=impl))[1]
        )

    step = jax.jit(jax.value_and_grad(loss), static_argnums=2)
    for seed in (0, 1, 2):
        cell = rnnjax.lstm(H, peephole=True)  # a new, equal cell every call
        params, xs, _, _ = _problem(cell, (2,), seed)
        jax.block_until_ready(step(params, xs, cell))
    assert len(traces) == 1
    assert step._cache_size() == 1


# ---------------------------------------------------------------------- projection
# inside the kernel (forward-only calls on the CPU, large projections)


@pytest.fixture
def chunked_projection(monkeypatch):
    """Makes ``unroll`` project in chunks of ``size`` steps at any size; returns a
    setter and the list of chunk sizes used by each trace."""
    used = []
    original = fused_module.projected_recurrence

    def spy(*args, chunk, **kwargs):
        used.append(chunk)
        return original(*args, chunk=chunk, **kwargs)

    def set_size(size):
        monkeypatch.setattr(
            fused_module, "projection_chunk", lambda cell, params, xs: size
        )

    monkeypatch.setattr(fused_module, "projected_recurrence", spy)
    return set_size, used


# Every cell at 2 steps a chunk (a padded last chunk); the edge sizes (one step a
# chunk, one chunk) with the LSTM alone: they do not depend on the cell.
@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("lstm", 1),
        ("lstm", 2),
        ("lstm", T),
        ("lstm_combo", 2),
        ("gru", 2),
        ("simple_tanh", 2),
    ],
)
def test_projected_equals_scan(name, size, chunked_projection):
    """Values (the chunked primal), VJPs and JVPs (the hoisted rule) of
    ``impl="fused"`` with the projection inside equal the scan, with lengths,
    reversal, resets and a recurrent mask."""
    set_size, used = chunked_projection
    set_size(size)
    cell = FUSABLE[name]()
    options = dict(lengths=True, resets=True, rec_mask=True)
    params, xs, carry, kwargs = _problem(cell, (2, 3), 20, **options)
    primals = (params, xs, carry)
    tangents = random_like(primals, 21)
    for reverse in (False, True):
        fused, scan = (
            run_impl(cell, impl, reverse=reverse, **kwargs)
            for impl in ("fused", "scan")
        )
        assert_same_derivatives(fused, scan, primals, tangents, seed=22)
    assert used and set(used) == {size}


@pytest.mark.parametrize("wrt", ["params", "xs", "carry"])
def test_projected_derivative_of_one_argument(wrt, chunked_projection):
    """Symbolic zeros: gradients and JVPs w.r.t. one argument alone (the others
    closed over) equal the scan's."""
    chunked_projection[0](2)
    cell = FUSABLE["lstm_peephole"]()
    params, xs, carry, kwargs = _problem(cell, (3,), 23, lengths=True)
    args = {"params": params, "xs": xs, "carry": carry}

    def of_one(impl):
        def f(a):
            full = {**args, wrt: a}
            return run_impl(cell, impl, **kwargs)(
                full["params"], full["xs"], full["carry"]
            )

        return f

    loss = lambda impl: lambda a: jnp.sum(jnp.sin(of_one(impl)(a)[1]))
    tangent = random_like(args[wrt], 24)
    grad = lambda impl: jax.grad(loss(impl))(args[wrt])
    jvp = lambda impl: jax.jvp(of_one(impl), (args[wrt],), (tangent,))
    for f in (grad, jvp):
        got, want = (
            jit_fast(functools.partial(f, impl))() for impl in ("fused", "scan")
        )
        assert_tree_close(got, want)


def test_projected_vmap(chunked_projection):
    chunked_projection[0](2)
    cell = FUSABLE["gru"]()
    problems = [_problem(cell, (2,), s) for s in (25, 26)]
    params, xs, carry = jax.tree.map(
        lambda *t: jnp.stack(t), *[p[:3] for p in problems]
    )

    def batched(impl):
        f = run_impl(cell, impl)
        g = jax.grad(lambda *a: jnp.sum(jnp.tanh(f(*a)[1])), argnums=(0, 1, 2))
        return jit_fast(jax.vmap(lambda *a: (f(*a), g(*a))))(params, xs, carry)

    assert_tree_close(batched("fused"), batched("scan"))


def test_projected_only_for_the_fused_kernel(chunked_projection):
    """``auto`` and ``fused`` take the projection inside; ``scan`` and the remat
    paths do not."""
    set_size, used = chunked_projection
    set_size(2)
    cell = FUSABLE["lstm"]()
    params, xs, _, _ = _problem(cell, (2,), 27)
    for impl in ("auto", "fused"):
        jax.eval_shape(
            lambda p, x, i=impl: rnnjax.unroll(
                cell, p, x, options=rnnjax.UnrollOptions(impl=i)
            ),
            params,
            xs,
        )
    assert used == [2, 2]
    jax.eval_shape(
        lambda p, x: rnnjax.unroll(
            cell, p, x, options=rnnjax.UnrollOptions(impl="scan")
        ),
        params,
        xs,
    )
    jax.eval_shape(
        lambda p, x: rnnjax.unroll(
            cell, p, x, options=rnnjax.UnrollOptions(remat="chunk")
        ),
        params,
        xs,
    )
    assert used == [2, 2]


def _chunk_for(cell, steps, batch, n_in):
    params = jax.eval_shape(lambda: cell.init(jax.random.key(0), n_in))
    xs = jax.ShapeDtypeStruct((steps, batch, n_in), jnp.float32)
    return fused_module.projection_chunk(cell, params, xs)


def test_projection_chunk_rule():
    """Chunks of about 8 MiB once the whole projection reaches 32 MiB, a divisor of
    ``T`` within a factor 2 of that where one exists (used when lowered for the
    CPU only: ``tests/kernels/test_platforms.py``)."""
    lstm = rnnjax.lstm(512)  # a step of B=64 projects 64 x 2048 floats = 512 KiB
    assert _chunk_for(lstm, 256, 64, 512) == 16  # 128 MiB
    assert _chunk_for(lstm, 250, 64, 512) == 10  # no divisor in [8, 16] but 10
    assert _chunk_for(lstm, 251, 64, 512) == 16  # prime: padded
    assert _chunk_for(lstm, 256, 16, 512) == 64
    assert _chunk_for(lstm, 63, 64, 512) is None  # 31.5 MiB
    assert _chunk_for(lstm, 64, 64, 512) == 16  # 32 MiB
    assert _chunk_for(rnnjax.lstm(256), 128, 32, 128) is None  # 16 MiB
    # 1536 columns, 384 KiB a step: 21 steps, and 16 the divisor of 256 below
    assert _chunk_for(rnnjax.gru(512), 256, 64, 512) == 16
    assert _chunk_for(rnnjax.gru(512, reset_after=False), 256, 64, 512) is None

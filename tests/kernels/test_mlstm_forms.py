"""The mLSTM core's parallel and chunkwise forms must equal its recurrence.

Values, final carry (``m`` included) and reverse-mode derivatives w.r.t. ``q``,
``k``, ``v``, both gates and the initial carry; chunk sizes 1, 3, 4 (``T = 11``
not a multiple), ``T`` and more than ``T``; both forget gates; padding (NaN in the
padded inputs, a sequence of length 0); extreme gates. Then through
``rnnjax.unroll`` with every impl (lengths, reverse, time-major, batch shapes
``()``, ``(2,)``, ``(2, 3)``, remat, resets), a stack, the ``xlstm`` package's
own parallel form and recurrent step (PyTorch, float64), and the memory reverse
mode keeps: linear in ``T`` for the chunkwise form, quadratic for the parallel.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax.kernels import mlstm as core
from tests.cells import _reference as ref
from tests.cells.test_mlstm import paper_sequence
from tests.conftest import randomize
from tests.kernels._compare import (
    assert_tree_close,
    jit_fast,
    run_impl,
    values_and_vjp,
)

B, NH, T, DH = 2, 2, 11, 4


def _core_problem(seed, forget_gate, lengths, gate_scale=2.0):
    """Random ``(q, k, v, i_pre, f_pre, carry)`` and ``valid (B, T)``; NaN in the
    padded steps' inputs."""
    r = np.random.default_rng(seed)
    normal = lambda *shape: r.standard_normal(shape).astype(np.float32)
    q, k, v = normal(B, NH, T, DH), normal(B, NH, T, DH) / 2, normal(B, NH, T, DH)
    i_pre = gate_scale * normal(B, NH, T)
    if forget_gate == "sigmoid":
        f_pre = gate_scale * normal(B, NH, T) + 2.0
    else:  # log f = f~, mostly below 0
        f_pre = 0.5 * normal(B, NH, T) - 0.3
    valid = np.arange(T)[None] < np.asarray(lengths)[:, None]
    for x in (q, k, v, i_pre, f_pre):
        x[~np.broadcast_to(valid[:, None], x.shape[:3])] = np.nan
    carry = rnnjax.MLSTMState(
        normal(B, NH, DH, DH) / 2, normal(B, NH, DH) / 2, normal(B, NH)
    )
    args = jax.tree.map(jnp.asarray, (q, k, v, i_pre, f_pre, carry))
    return args, jnp.asarray(valid)


def _form(name, size, **kw):
    if name == "scan":
        return functools.partial(core.mlstm_scan, **kw)
    if name == "parallel":
        return functools.partial(core.mlstm_parallel, **kw)
    return functools.partial(core.mlstm_chunkwise, chunk_size=size, **kw)


# (forget gate, lengths, forms compared with the scan)
CASES = {
    "sigmoid": ("sigmoid", [T, 5], [("parallel", 0), ("chunkwise", 3)]),
    # chunks of 64 > T: one chunk, the parallel form (what "auto" runs for T <= 64)
    "exp": ("exp", [T - 1, 0], [("chunkwise", 1), ("chunkwise", 64)]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_forms_equal_the_recurrence(case):
    """Values, final carry and VJPs (w.r.t. q, k, v, gates, carry) of every form
    equal the scan's; padded steps output zero and NaN there reaches nothing."""
    forget_gate, lengths, forms = CASES[case]
    args, valid = _core_problem(1, forget_gate, lengths)
    kw = dict(valid=valid, forget_gate=forget_gate)

    def everything(*a):
        return {
            f"{name}{size}": values_and_vjp(_form(name, size, **kw), a, 2)
            for name, size in [("scan", 0), *forms]
        }

    results = jit_fast(everything)(*args)
    want = results.pop("scan0")
    for name, got in results.items():
        assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(got)), name
        assert_tree_close(got, want)
    (carry, h), grads = want
    pad = np.broadcast_to(~np.asarray(valid)[:, None], h.shape[:3])  # (B, NH, T)
    np.testing.assert_array_equal(np.asarray(h)[pad], 0.0)
    for g in grads[:5]:  # no derivative reaches a padded step's inputs
        np.testing.assert_array_equal(np.asarray(g)[pad], 0.0)
    if lengths[1] == 0:  # nothing valid: the carry comes back unchanged
        for got, init in zip(carry, args[5], strict=True):
            np.testing.assert_array_equal(got[1], init[1])


def test_extreme_gates():
    """Input gates of magnitude ~100 (``exp`` overflows float32 unstabilised):
    every form finite and equal to the recurrence (chunks of 4, ``T = 11``)."""
    args, _ = _core_problem(3, "sigmoid", [T, T], gate_scale=60.0)

    def forms(*a):
        return [
            _form(n, s)(*a) for n, s in [("scan", 0), ("parallel", 0), ("chunkwise", 4)]
        ]

    want, *got = jit_fast(forms)(*args)
    assert np.all(np.isfinite(want[1]))
    for g in got:
        assert_tree_close(g, want, rtol=2e-5)


def test_zero_steps():
    args, _ = _core_problem(4, "sigmoid", [T, T])
    args = (*jax.tree.map(lambda x: x[:, :, :0], args[:5]), args[5])
    for impl in ("scan", "parallel", "chunkwise"):
        carry, h = core.mlstm_sequence(*args, impl=impl)
        assert h.shape == (B, NH, 0, DH)
        for got, init in zip(carry, args[5], strict=True):
            np.testing.assert_array_equal(got, init)


# ---------------------------------------------------------------------- through unroll

H, IN = NH * DH, 3


def _unroll_problem(batch_shape, seed, num_steps=7):
    cell = rnnjax.mlstm(H, num_heads=NH, chunk_size=3)
    params = randomize(cell.init(jax.random.key(seed), IN), seed=seed)
    r = np.random.default_rng(seed)
    xs = jnp.asarray(r.standard_normal((*batch_shape, num_steps, IN)), jnp.float32)
    carry = randomize(cell.initial_carry(batch_shape), seed=seed + 1)
    return cell, params, xs, carry


def _unroll(cell, lengths=None, **kwargs):
    """``f(params, xs, carry)``: ``rnnjax.unroll`` with ``UnrollOptions(**kwargs)``."""

    def f(p, x, c, reverse=False, time_major=False):
        return rnnjax.unroll(
            cell, p, x, carry=c, seq_lengths=lengths, reverse=reverse,
            time_major=time_major, options=rnnjax.UnrollOptions(**kwargs),
        )  # fmt: skip

    return f


def test_unroll_with_gradients():
    """Batch ``(2, 3)``, lengths (0 and full among them), reversed: ``chunkwise``
    (chunks of 3, ``T = 7``) equals ``scan``, values and VJPs w.r.t. the
    parameters, inputs and initial carry."""
    cell, params, xs, carry = _unroll_problem((2, 3), 5)
    lengths = jnp.array([[0, 7, 2], [6, 1, 3]])

    def both(*a):
        runs = [_unroll(cell, lengths, impl=impl) for impl in ("scan", "chunkwise")]
        return [values_and_vjp(functools.partial(f, reverse=True), a, 6) for f in runs]

    got, want = jit_fast(both)(params, xs, carry)
    assert_tree_close(got, want)


# (batch shape, unroll arguments, UnrollOptions of the forms compared with "scan")
UNROLL_CASES = {
    "B0-reverse": (
        (),
        dict(reverse=True),
        [dict(impl="parallel"), dict(impl="chunkwise")],
    ),
    "B2-time_major-remat": (
        (2,),
        dict(time_major=True),
        [dict(impl="parallel"), dict(impl="chunkwise", remat="chunk", chunk_size=4)],
    ),
}


@pytest.mark.parametrize("case", sorted(UNROLL_CASES))
def test_unroll_values(case):
    """Values through ``unroll``; ``"auto"`` is ``"chunkwise"`` (``kernels.select``,
    tested with the cell). ``remat="chunk"`` runs the chunkwise form per remat
    chunk (4 steps), from the carry at its boundary."""
    batch_shape, kwargs, variants = UNROLL_CASES[case]
    cell, params, xs, carry = _unroll_problem(batch_shape, 7)
    lengths = None
    if kwargs.get("time_major"):
        xs = jnp.moveaxis(xs, -2, 0)
        lengths = jnp.array([7, 4])
    results = jit_fast(
        lambda *a: [
            _unroll(cell, lengths, **v)(*a, **kwargs)
            for v in [dict(impl="scan"), *variants]
        ]
    )(params, xs, carry)
    for got in results[1:]:
        assert_tree_close(got, results[0])


def test_resets_run_the_scan():
    """The parallel forms do not model resets: with resets they run the scan."""
    cell, params, xs, carry = _unroll_problem((2,), 8)
    resets = jnp.zeros((2, 7), bool).at[0, 3].set(True).at[1, 5].set(True)
    results = jit_fast(
        lambda *a: [
            run_impl(cell, impl, resets=resets)(*a) for impl in ("scan", "chunkwise")
        ]
    )(params, xs, carry)
    assert_tree_close(results[1], results[0])


def test_stack_equals_the_paper_equations():
    """A stack of two mLSTM layers (2 heads, then 1), ``auto``, with lengths,
    against the float64 NumPy implementation of the paper's unstabilised
    equations (``tests/cells/test_mlstm.py``) layer after layer."""
    cells = [rnnjax.mlstm(H, num_heads=NH, chunk_size=4), rnnjax.mlstm(H, num_heads=1)]
    stack = rnnjax.stack(cells)
    params = randomize(stack.init(jax.random.key(0), IN), seed=9, scale=0.3)
    xs = jax.random.normal(jax.random.key(1), (2, 6, IN))
    lengths = jnp.array([6, 3])
    _, ys = jit_fast(lambda p, x: stack.apply(p, x, seq_lengths=lengths))(params, xs)
    want = np.swapaxes(np.asarray(xs, np.float64), 0, 1)  # (T, B, I)
    for cell, p in zip(
        cells, jax.tree.leaves(params, is_leaf=_is_cell_params), strict=True
    ):
        want = paper_sequence(ref.to64(p), want, "sigmoid", cell.num_heads)
    want = np.swapaxes(want, 0, 1)
    np.testing.assert_allclose(ys[0], want[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ys[1, :3], want[1, :3], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ys[1, 3:], 0.0)


def _is_cell_params(x):
    return isinstance(x, dict) and "w_x" in x


# ---------------------------------------------------------------------- the package


def test_equals_the_xlstm_package():
    """``parallel_stabilized_simple`` and ``recurrent_step_stabilized_simple`` of
    ``xlstm`` 2.0.6 (PyTorch, float64; they scale ``k`` themselves). The
    package's parallel form leaves the zero initial state out of its stabiliser,
    which changes ``h`` only where ``F_t`` beats every ``i_j + ...``: input gates
    ``>= 0`` rule that out."""
    torch = pytest.importorskip("torch")
    backends = pytest.importorskip("xlstm.blocks.mlstm.backends")
    r = np.random.default_rng(10)
    normal = lambda *shape: r.standard_normal(shape)
    q, k, v = normal(B, NH, T, DH), normal(B, NH, T, DH), normal(B, NH, T, DH)
    i_pos, i_any, f_pre = np.abs(normal(B, NH, T)), normal(B, NH, T), normal(B, NH, T)
    f_pre = f_pre + 1.0
    zero = rnnjax.MLSTMState(
        jnp.zeros((B, NH, DH, DH)), jnp.zeros((B, NH, DH)), jnp.zeros((B, NH))
    )
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    ours = jax.jit(
        lambda q, k, v, ip, ia, f: (
            core.mlstm_parallel(q, k / math.sqrt(DH), v, ip, f, zero)[1],
            core.mlstm_scan(q, k / math.sqrt(DH), v, ia, f, zero),
        )
    )
    h_par, (carry, h_scan) = ours(*map(f32, (q, k, v, i_pos, i_any, f_pre)))

    t = lambda x: torch.tensor(x, dtype=torch.float64)
    want = backends.parallel_stabilized_simple(
        t(q), t(k), t(v), t(i_pos)[..., None], t(f_pre)[..., None]
    )
    np.testing.assert_allclose(h_par, want.numpy(), rtol=1e-5, atol=1e-5)

    c, n, m = (torch.zeros(s, dtype=torch.float64) for s in
               [(B, NH, DH, DH), (B, NH, DH, 1), (B, NH, 1, 1)])  # fmt: skip
    for step in range(T):
        at = lambda x, s=step: t(x[:, :, s : s + 1])
        h, (c, n, m) = backends.recurrent_step_stabilized_simple(
            c, n, m, at(q), at(k), at(v), at(i_any)[..., None], at(f_pre)[..., None]
        )
        np.testing.assert_allclose(
            h_scan[:, :, step], h[:, :, 0].numpy(), rtol=1e-5, atol=1e-5
        )
    for got, w in zip(carry, (c, n[..., 0], m[..., 0, 0]), strict=True):
        np.testing.assert_allclose(got, w.numpy(), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- memory


def _residual_bytes(form, num_steps):
    """Bytes reverse mode keeps for the backward pass (the VJP's residuals),
    from shapes alone (nothing is compiled)."""
    s = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
    x, g = s(1, NH, num_steps, 8), s(1, NH, num_steps)
    carry = rnnjax.MLSTMState(s(1, NH, 8, 8), s(1, NH, 8), s(1, NH))
    vjp = jax.eval_shape(lambda *a: jax.vjp(form, *a)[1], x, x, x, g, g, carry)
    return sum(math.prod(r.shape) * r.dtype.itemsize for r in jax.tree.leaves(vjp))


def test_chunkwise_memory_is_linear_in_time():
    """Doubling ``T`` doubles what the chunkwise form keeps for reverse mode; the
    parallel form's quadruples (its ``T x T`` matrices)."""
    chunkwise = functools.partial(core.mlstm_chunkwise, chunk_size=32)
    ratio = _residual_bytes(chunkwise, 2048) / _residual_bytes(chunkwise, 1024)
    assert 1.9 < ratio < 2.2
    ratio = _residual_bytes(core.mlstm_parallel, 2048) / _residual_bytes(
        core.mlstm_parallel, 1024
    )
    assert ratio > 3.5


# ---------------------------------------------------------------------- errors


def test_core_argument_errors():
    args, valid = _core_problem(11, "sigmoid", [T, T])
    q, k, v, i_pre, f_pre, carry = args
    bad = {
        "q": ((q[0, 0], k, v, i_pre, f_pre, carry), {}),
        "k": ((q, k[..., :2], v, i_pre, f_pre, carry), {}),
        "i_pre": ((q, k, v, i_pre[..., :3], f_pre, carry), {}),
        "f_pre": ((q, k, v, i_pre, f_pre[None], carry), {}),
        "carry": ((q, k, v, i_pre, f_pre, tuple(carry)), {}),
        "carry.": ((q, k, v, i_pre, f_pre, carry._replace(m=carry.m[0])), {}),
        "valid": ((q, k, v, i_pre, f_pre, carry), dict(valid=valid[0])),
        "valid.": ((q, k, v, i_pre, f_pre, carry), dict(valid=valid.astype(int))),
        "forget_gate": ((q, k, v, i_pre, f_pre, carry), dict(forget_gate="relu")),
        "eps": ((q, k, v, i_pre, f_pre, carry), dict(eps=-1.0)),
        "chunk_size": ((q, k, v, i_pre, f_pre, carry), dict(chunk_size=0)),
        "impl": ((q, k, v, i_pre, f_pre, carry), dict(impl="fused")),
    }
    for name, (a, kw) in bad.items():
        with pytest.raises((ValueError, TypeError), match=name.rstrip(".")):
            core.mlstm_sequence(*a, **kw)
    with pytest.raises(ValueError, match="chunk_size"):
        core.mlstm_chunkwise(*args, chunk_size=-1)


def test_parallel_form_under_jit_at_a_thousand_steps():
    # XLA:CPU (jax 0.10.2) miscompiled ``(s @ v) / den`` under jit at T = 1024
    # with 4 heads of 64 and a zero carry built inside the jitted function
    # (values up to 1e31); the form now normalises s before the product.
    B, NH, T, DH = 1, 4, 1024, 64
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((B, NH, T, DH), np.float32) for _ in "qkv")
    i_pre = rng.standard_normal((B, NH, T), np.float32)
    f_pre = (3.0 + rng.standard_normal((B, NH, T))).astype(np.float32)
    args = (q, k / np.float32(8.0), v, i_pre, f_pre)

    def zero_carry():
        return rnnjax.MLSTMState(
            jnp.zeros((B, NH, DH, DH)), jnp.zeros((B, NH, DH)), jnp.zeros((B, NH))
        )

    def form(fn):
        return jax.jit(lambda *a: fn(*a, zero_carry())[1])(*args)

    parallel, chunkwise = form(core.mlstm_parallel), form(core.mlstm_chunkwise)
    scale = float(jnp.max(jnp.abs(chunkwise)))
    assert float(jnp.max(jnp.abs(parallel - chunkwise))) < 1e-4 * scale

"""The chunkwise mLSTM Pallas kernel (`rnnjax.kernels.pallas_mlstm`) must equal
the recurrent equations of the mLSTM core.

On this CPU both flavours run in Pallas' interpreter (TPU: the chunk grid with
the state in VMEM scratch; GPU: value tiles walking the chunks in a loop):
values and the final carry against a float64 NumPy loop over the recurrent
form written here, with ``T`` not a multiple of the chunk size, a ``valid``
mask, a non-zero initial carry and both forget gates; values, final carry
and gradients against ``rnnjax.kernels.mlstm`` (``mlstm_scan``,
``mlstm_chunkwise``); the mLSTM cell through ``rnnjax.unroll`` with
``impl=Pallas(...)``. Cross-lowering for
``tpu`` and ``cuda`` checks the kernels against the real compilers' front ends
(Mosaic's (8, 128) blocks, Triton's power-of-two tiles); the size rules are
checked against the refusals (``tests/accelerators`` compiles them for every
chip).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax import kernels
from rnnjax.cells.mlstm import MLSTMState
from rnnjax.kernels import Pallas, chips
from rnnjax.kernels import mlstm as plain
from rnnjax.kernels import pallas_mlstm as pm
from rnnjax.kernels.pallas_mlstm import mlstm_chunkwise_pallas
from tests.conftest import randomize
from tests.kernels._compare import (
    FAST_COMPILE,
    assert_tree_close,
    jit_fast,
    values_and_vjp,
)


def reference(q, k, v, i_pre, f_pre, carry, valid, forget_gate, eps=1e-6):
    """The recurrent form, step by step in float64: ``(C, n, m, h)``."""
    q, k, v, i_pre, f_pre = (np.asarray(x, np.float64) for x in (q, k, v, i_pre, f_pre))
    C, n, m = (np.array(x, np.float64) for x in carry)
    batch, (NH, T) = q.shape[:-3], q.shape[-3:-1]
    h = np.zeros_like(q)
    for idx in np.ndindex(*batch):
        for head in range(NH):
            at = (*idx, head)
            for t in range(T):
                if valid is not None and not valid[(*idx, t)]:
                    continue
                f = f_pre[(*at, t)]
                log_f = -np.logaddexp(0.0, -f) if forget_gate == "sigmoid" else f
                m_new = max(log_f + m[at], i_pre[(*at, t)])
                i_gate = np.exp(i_pre[(*at, t)] - m_new)
                f_gate = np.exp(log_f + m[at] - m_new)
                C[at] = f_gate * C[at] + i_gate * np.outer(k[(*at, t)], v[(*at, t)])
                n[at] = f_gate * n[at] + i_gate * k[(*at, t)]
                m[at] = m_new
                qt = q[(*at, t)]
                den = max(abs(qt @ n[at]), np.exp(-m_new)) + eps
                h[(*at, t)] = (qt @ C[at]) / den
    return C, n, m, h


def problem(batch, NH, T, DH, seed, dtype=jnp.float32, lengths=None):
    r = np.random.default_rng(seed)
    normal = lambda *shape, scale=1.0: scale * r.standard_normal(shape)
    q, k, v = (
        jnp.asarray(normal(*batch, NH, T, DH, scale=s), dtype)
        for s in (1.0, DH**-0.5, 1.0)
    )
    i_pre = jnp.asarray(normal(*batch, NH, T), jnp.float32)
    f_pre = jnp.asarray(normal(*batch, NH, T) + 2.0, jnp.float32)
    carry = MLSTMState(
        jnp.asarray(normal(*batch, NH, DH, DH, scale=0.3), jnp.float32),
        jnp.asarray(normal(*batch, NH, DH, scale=0.3), jnp.float32),
        jnp.asarray(normal(*batch, NH, scale=0.5), jnp.float32),
    )
    valid = None
    if lengths is not None:  # NaN in every input of the invalid steps
        lens = np.resize(np.asarray(lengths), int(np.prod(batch))).reshape(batch)
        valid = jnp.asarray(np.arange(T) < lens[..., None])
        gate_ok = valid[..., None, :]
        q, k, v = (jnp.where(gate_ok[..., None], x, jnp.nan) for x in (q, k, v))
        i_pre, f_pre = (jnp.where(gate_ok, x, jnp.nan) for x in (i_pre, f_pre))
    return (q, k, v, i_pre, f_pre, carry), valid


def check_values(flavour, batch, T, L, forget_gate, lengths, seed, rtol=2e-5):
    args, valid = problem(batch, 2, T, 8, seed, lengths=lengths)
    options = Pallas(flavour=flavour, interpret=True)

    def f(*args):
        return mlstm_chunkwise_pallas(
            *args, valid=valid, forget_gate=forget_gate, chunk_size=L, options=options
        )

    carry, h = jit_fast(f)(*args)
    mask = None if valid is None else np.asarray(valid)
    want = reference(*args[:5], args[5], mask, forget_gate)
    for name, got, w in zip(("C", "n", "m", "h"), (*carry, h), want, strict=True):
        scale = max(1.0, float(np.max(np.abs(w))))
        np.testing.assert_allclose(
            np.asarray(got, np.float64), w, rtol=rtol, atol=rtol * scale, err_msg=name
        )
    return carry, h


# (flavour, chunk size): the TPU's sublane tiling allows 8, Triton wants 16.
CHUNKS = {"tpu": 8, "gpu": 16}


@pytest.mark.parametrize("flavour", sorted(CHUNKS))
def test_values_masked_and_ragged(flavour):
    """Two batch dimensions, a ``valid`` mask (zero, partial and full lengths;
    NaN in the inputs of the invalid steps), ``T`` two chunks and a bit; the
    sigmoid forget gate."""
    L = CHUNKS[flavour]
    T = 2 * L + 5
    carry, h = check_values(flavour, (2, 2), T, L, "sigmoid", [0, T, 3, L + 1], 0)
    assert carry.C.dtype == jnp.float32 and h.shape == (2, 2, 2, T, 8)


def test_bfloat16_exp_gate_one_padded_chunk():
    """bfloat16 ``q, k, v`` in chunks of 16 rows (the bf16 sublane tiling),
    widened to float32 in the kernel; ``h`` in float32 with the float32 carry
    (the plain forms' ``result_type``). ``forget_gate="exp"`` (log f = f_pre,
    may be positive), no mask, ``T`` shorter than one chunk; the TPU flavour
    (the gate enters in the preparation that both flavours share)."""
    args, _ = problem((3,), 2, 13, 8, 2, dtype=jnp.bfloat16)
    options = Pallas(flavour="tpu", interpret=True)

    def f(*args):
        return mlstm_chunkwise_pallas(
            *args, forget_gate="exp", chunk_size=16, options=options
        )

    carry, h = jit_fast(f)(*args)
    want = reference(*args[:5], args[5], None, "exp")
    assert h.dtype == jnp.float32 and carry.C.dtype == jnp.float32
    for name, got, w in zip(("C", "n", "m", "h"), (*carry, h), want, strict=True):
        scale = max(1.0, float(np.max(np.abs(w))))
        np.testing.assert_allclose(
            np.asarray(got), w, rtol=1e-5, atol=1e-5 * scale, err_msg=name
        )


# ---------------------------------------------------------------- size rules


def _plan(flavour, L, DH, target=None, dtype=jnp.float32, T=100):
    return pm.plan(
        L=L,
        T=T,
        DH=DH,
        in_dtype=jnp.dtype(dtype),
        eps=1e-6,
        forget_gate="sigmoid",
        options=Pallas(flavour=flavour, interpret=False, target=target),
    )


def test_tpu_size_rules():
    assert (_plan("tpu", 64, 256).L, _plan("tpu", 64, 256).NC) == (64, 2)
    assert (_plan("tpu", 64, 256, T=1).L, _plan("tpu", 64, 256, T=9).L) == (8, 16)
    assert _plan("tpu", 64, 256, T=9, dtype=jnp.bfloat16).L == 16
    assert "multiple of 8" in _plan("tpu", 12, 64)
    assert "multiple of 16" in _plan("tpu", 8, 64, dtype=jnp.bfloat16)
    assert "VMEM" in _plan("tpu", 64, 768, target="v4")  # 16 MiB
    assert not isinstance(_plan("tpu", 128, 512, target="v4"), str)
    assert not isinstance(_plan("tpu", 64, 1024, target="v5p"), str)


def test_vmem_model_matches_what_mosaic_used():
    """Mosaic's VMEM use on v4 (compiled deviceless, float32, the limit at 90%)
    at the two refused sizes: the model stays above it and within 20%."""
    used = {(64, 768): 16.25, (64, 1024): 27.63}  # MiB
    for (L, DH), mib in used.items():
        model = pm.tpu_vmem_bytes(L, DH) / (1 << 20)
        assert mib <= model <= 1.2 * mib


def test_gpu_size_rules():
    """Chunks a power of two from 16 to 128; ``DH`` padded to a power of two;
    the value tile shrinks (64, 32, 16) until the staged operands fit."""
    p = _plan("gpu", 64, 48)
    assert (p.DHp, p.BV, p.L, p.NC) == (64, 64, 64, 2)
    assert (_plan("gpu", 64, 48, T=3).L, _plan("gpu", 64, 48, T=20).L) == (16, 32)
    assert "power of two" in _plan("gpu", 24, 64)
    assert "power of two" in _plan("gpu", 256, 64)
    assert _plan("gpu", 64, 512, target="sm_90").BV == 32
    assert _plan("gpu", 64, 512, target="sm_80").BV == 16
    assert "shared memory" in _plan("gpu", 128, 512, target="sm_80")


def test_shared_memory_model_matches_what_triton_asked():
    """Bytes Triton requested where a case did not fit (sm_80 and sm_90):
    ``(L, DHp, BV) -> bytes``."""
    asked = {(64, 512, 64): 262144, (128, 256, 64): 196608, (32, 512, 64): 196608}
    for (L, DHp, BV), n in asked.items():
        assert pm.gpu_shared_bytes(L, DHp, BV) == n
    # (16, 512, 64) compiled for sm_80: within its 163 KiB.
    assert pm.gpu_shared_bytes(16, 512, 64) <= chips.CHIPS["sm_80"].memory


def test_refusal_before_compute():
    args, _ = problem((1,), 1, 4, 8, 3)
    with pytest.raises(ValueError, match="impl: 'pallas' cannot run this shape"):
        jax.eval_shape(
            lambda *a: mlstm_chunkwise_pallas(
                *a, chunk_size=12, options=Pallas(flavour="gpu", interpret=True)
            ),
            *args,
        )


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(k=jnp.zeros((1, 1, 4, 7))), "k: expected q's shape"),
        (dict(i_pre=jnp.zeros((1, 4))), r"i_pre: expected \(1, 1, 4\)"),
        (dict(valid=jnp.ones((1, 5), bool)), r"valid: expected \(1, 4\)"),
        (dict(carry=(1, 2, 3)), "carry: expected an rnnjax.MLSTMState"),
        (dict(q=jnp.zeros((1, 1, 4, 8), jnp.float16)), "q: expected float32 or"),
        (dict(forget_gate="tanh"), "forget_gate: expected one of"),
        (dict(chunk_size=0), "chunk_size: expected a positive int"),
    ],
)
def test_bad_arguments_name_the_argument(change, match):
    (q, k, v, i_pre, f_pre, carry), _ = problem((1,), 1, 4, 8, 4)
    kwargs = dict(q=q, k=k, v=v, i_pre=i_pre, f_pre=f_pre, carry=carry)
    kwargs |= change
    with pytest.raises((ValueError, TypeError), match=match):
        mlstm_chunkwise_pallas(**kwargs)


def test_empty_sequence_returns_the_carry():
    args, _ = problem((2,), 1, 0, 8, 5)
    carry, h = mlstm_chunkwise_pallas(*args, options=Pallas(interpret=True))
    assert h.shape == (2, 1, 0, 8) and carry is args[5]


# ---------------------------------------------------------------- cross-lowering

LOWERINGS = {"tpu": ("tpu", "tpu_custom_call", 16), "cuda": ("gpu", "triton", 32)}


@pytest.mark.parametrize("platform", sorted(LOWERINGS))
def test_cross_lowering(platform):
    """The forward lowered for real hardware from this CPU host: a mask, a
    ragged last chunk, ``DH = 40`` (the GPU pads it to 64)."""
    flavour, marker, L = LOWERINGS[platform]
    args, valid = problem((2,), 2, 2 * L + 3, 40, 6, lengths=[7, 2 * L + 3])
    options = Pallas(flavour=flavour, interpret=False)

    def f(*a):
        return mlstm_chunkwise_pallas(*a, valid=valid, chunk_size=L, options=options)

    text = jax.jit(f).trace(*args).lower(lowering_platforms=(platform,)).as_text()
    assert marker in text


# ---------------------------------------------------------------- the plain forms


def test_equals_plain_forms_values_and_gradients():
    """Against ``mlstm_scan`` (the recurrence): outputs, final carry and the VJP
    of every float input (a random cotangent on ``h`` and the carry); against
    ``mlstm_chunkwise`` at the same chunk size (whose VJP is the kernel's
    derivative): outputs and final carry. With a mask (NaN in the invalid
    steps) and a ragged last chunk; the TPU flavour (the derivative is the same
    for both flavours, whose forward values are checked above)."""
    L = CHUNKS["tpu"]
    T = 2 * L + 3
    (q, k, v, i_pre, f_pre, c), valid = problem((2,), 2, T, 8, 7, lengths=[T, 4])
    primals = (q, k, v, i_pre, f_pre, c)
    options = Pallas(flavour="tpu", interpret=True)

    def run(form, **kwargs):
        def f(*args):
            return form(*args, valid=valid, **kwargs)

        vjp = lambda *a: values_and_vjp(f, a, seed=8)
        return jax.jit(vjp).lower(*primals).compile(FAST_COMPILE)(*primals)

    got = run(mlstm_chunkwise_pallas, chunk_size=L, options=options)
    assert_tree_close(got, run(plain.mlstm_scan), rtol=2e-5)
    chunked = jit_fast(lambda *a: plain.mlstm_chunkwise(*a, valid=valid, chunk_size=L))
    assert_tree_close(got[0], chunked(*primals), rtol=2e-5)


# ---------------------------------------------------------------- through unroll


def test_unroll_selects_the_kernel_for_mlstm_cells():
    cell = rnnjax.mlstm(16, num_heads=2, chunk_size=8)
    chosen = kernels.select(cell, "pallas")
    assert chosen.func is kernels.pallas_chunkwise_recurrence
    assert chosen.keywords["options"] == Pallas()
    tpu = Pallas(flavour="tpu", interpret=True)
    assert kernels.select(cell, tpu).keywords["options"] is tpu


def test_unroll_equals_scan():
    """``rnnjax.unroll`` of ``rnnjax.mlstm`` with ``impl=Pallas(flavour="tpu",
    interpret=True)`` against ``impl="scan"``: outputs and carry, with lengths
    (``T`` two chunks and a bit). (The derivative is the core's, checked
    above.)"""
    cell = rnnjax.mlstm(16, num_heads=2, chunk_size=8)
    params = randomize(cell.init(jax.random.key(0), 6), seed=1, scale=0.3)
    xs = jnp.asarray(np.random.default_rng(2).standard_normal((2, 19, 6)), jnp.float32)
    lengths = jnp.asarray([19, 7])

    def run(impl):
        options = rnnjax.UnrollOptions(impl=impl)

        def f(params, xs):
            return rnnjax.unroll(cell, params, xs, seq_lengths=lengths, options=options)

        return jit_fast(f)(params, xs)

    assert_tree_close(run(Pallas(flavour="tpu", interpret=True)), run("scan"))

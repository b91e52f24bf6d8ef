"""The Pallas kernels of `rnnjax.kernels.pallas_mlstm` (the design, the size
rules and the entry point are there): one chunk of the mLSTM on tiles, shared,
and the TPU (Mosaic) and GPU (Triton) calls around it.

Layout handed to the kernels (legend ``NH`` heads, ``L`` chunk size, ``NC``
chunks, ``Tp = NC * L``; batch and heads flattened to ``BH`` rows, ``DHp`` the
padded head size):

    q, k, v (BH, Tp, DHp)                          in the inputs' dtype
    b, u, a, valid (BH, NC, L)  g (BH, NC, 1)       float32
    C0 (BH, DHp, DHp)  n0 (BH, 1, DHp)  m0 (BH, 1, 1)  float32

with ``b`` the cumulative log forget gates within each chunk, ``u = i - b``,
``g = b_L`` (the chunk's total), ``a = g - b + i`` and ``valid`` 1.0 / 0.0
(absent without a mask). On TPU the gates travel as columns ``(.., L, 1)`` and
rows ``(.., 1, L)`` (a block's last two sides equal to the array's), on GPU as
flat ``(BH, Tp)`` vectors sliced per chunk.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu
from jax.experimental.pallas import triton as plt

F32 = jnp.float32
NEG = -1e30  # the log input gate of an invalid step: exp(NEG - m) == 0


def _dot(a, b, contract, precision):
    """``a`` times ``b`` contracting ``contract = (axis of a, axis of b)``, in
    float32."""
    dims = (((contract[0],), (contract[1],)), ((), ()))
    return lax.dot_general(a, b, dims, precision=precision, preferred_element_type=F32)


def chunk(p, q, k, v, b, u, a, g, ok, C, n, m, causal, precision):
    """One chunk on tiles, float32: ``q, k (L, DHp)``, ``v (L, BV)``, gate columns
    ``b, a (L, 1)``, row ``u (1, L)``, ``g (1, 1)``, ``ok (L, 1)`` or None,
    ``causal (L, L)`` bool (``j <= t``), state ``C (DHp, BV)``, ``n (1, DHp)``,
    ``m (1, 1)``. Returns ``(h (L, BV), C', n', m')``. The ``k`` and ``v`` rows
    of invalid steps are zeroed (their gate weights are zero, but a NaN there
    would survive the product)."""
    if ok is not None:
        k = jnp.where(ok > 0.5, k, jnp.zeros_like(k))
        v = jnp.where(ok > 0.5, v, jnp.zeros_like(v))
    log_d = jnp.where(causal, b + u, NEG)  # b_t - b_j + i_j
    m_inter = b + m
    m_t = jnp.maximum(m_inter, jnp.max(log_d, axis=1, keepdims=True))
    mat = _dot(q, k, (1, 1), precision) * jnp.exp(log_d - m_t)
    qg = q * jnp.exp(m_inter - m_t)
    num = _dot(qg, C, (1, 0), precision) + _dot(mat, v, (1, 0), precision)
    den = jnp.sum(qg * n, axis=1, keepdims=True) + jnp.sum(mat, axis=1, keepdims=True)
    h = num / (jnp.maximum(jnp.abs(den), jnp.exp(-m_t)) + p.eps)
    if ok is not None:
        h = jnp.where(ok > 0.5, h, jnp.zeros_like(h))
    m_new = jnp.maximum(g + m, jnp.max(a, axis=0, keepdims=True))
    kg = k * jnp.exp(a - m_new)
    decay = jnp.exp(g + m - m_new)
    C = decay * C + _dot(kg, v, (0, 0), precision)
    n = decay * n + jnp.sum(kg, axis=0, keepdims=True)
    return h, C, n, m_new


# ------------------------------------------------------------------ TPU


def tpu_forward(p, q, k, v, gates, state, h_dtype):
    """``(h (BH, Tp, DHp) in h_dtype, C_T, n_T, m_T)``. Grid ``(BH: "parallel", NC:
    "arbitrary")``; the state in VMEM scratch, set from the carry at chunk 0 and
    written out at the last chunk."""
    BH, Tp, DH = q.shape
    L, NC = p.L, p.NC
    seq = pl.BlockSpec((None, L, DH), lambda h, c: (h, c, 0))
    col = pl.BlockSpec((None, None, L, 1), lambda h, c: (h, c, 0, 0))
    row = pl.BlockSpec((None, None, 1, L), lambda h, c: (h, c, 0, 0))
    one = pl.BlockSpec((None, None, 1, 1), lambda h, c: (h, c, 0, 0))
    per_head = lambda *shape: pl.BlockSpec((None, *shape), lambda h, c: (h, 0, 0))
    names = ["q", "k", "v", "b", "u", "a", "g"] + (["ok"] if "valid" in gates else [])
    names += ["C0", "n0", "m0"]
    ins = [q, k, v]
    ins += [gates["b"][..., None], gates["u"][:, :, None, :], gates["a"][..., None]]
    ins += [gates["g"][..., None]] + (
        [gates["valid"][..., None]] if "ok" in names else []
    )
    ins += list(state)
    specs = [seq, seq, seq, col, row, col, one] + ([col] if "ok" in names else [])
    specs += [per_head(DH, DH), per_head(1, DH), per_head(1, 1)]
    C_like = jax.ShapeDtypeStruct((BH, DH, DH), F32)
    out_shape = [
        jax.ShapeDtypeStruct((BH, Tp, DH), h_dtype),
        C_like,
        jax.ShapeDtypeStruct((BH, 1, DH), F32),
        jax.ShapeDtypeStruct((BH, 1, 1), F32),
    ]
    out_specs = [seq, per_head(DH, DH), per_head(1, DH), per_head(1, 1)]
    names += ["h", "CT", "nT", "mT", "C", "n", "m"]
    return pl.pallas_call(
        functools.partial(_tpu_kernel, p, tuple(names)),
        grid=(BH, NC),
        in_specs=specs,
        out_specs=out_specs,
        out_shape=out_shape,
        scratch_shapes=[
            pltpu.VMEM((DH, DH), F32),
            pltpu.VMEM((1, DH), F32),
            pltpu.VMEM((1, 1), F32),
        ],
        compiler_params=pltpu.CompilerParams(
            dimension_semantics=("parallel", "arbitrary"), vmem_limit_bytes=p.vmem
        ),
        interpret=p.interpret,
    )(*ins)


def _tpu_kernel(p, names, *refs):
    r = dict(zip(names, refs, strict=True))
    c = pl.program_id(1)

    @pl.when(c == 0)
    def _():
        r["C"][...] = r["C0"][...]
        r["n"][...] = r["n0"][...]
        r["m"][...] = r["m0"][...]

    load = lambda name: r[name][...].astype(F32)
    L = p.L
    causal = lax.broadcasted_iota(jnp.int32, (L, L), 0) >= lax.broadcasted_iota(
        jnp.int32, (L, L), 1
    )
    h, C, n, m = chunk(
        p,
        load("q"),
        load("k"),
        load("v"),
        load("b"),
        load("u"),
        load("a"),
        load("g"),
        load("ok") if "ok" in r else None,
        r["C"][...],
        r["n"][...],
        r["m"][...],
        causal,
        lax.Precision.HIGHEST,
    )
    r["h"][...] = h.astype(r["h"].dtype)
    r["C"][...] = C
    r["n"][...] = n
    r["m"][...] = m

    @pl.when(c == p.NC - 1)
    def _():
        r["CT"][...] = C
        r["nT"][...] = n
        r["mT"][...] = m


# ------------------------------------------------------------------ GPU


def gpu_forward(p, q, k, v, gates, state, h_dtype):
    """``(h (BH, Tp, DHp) in h_dtype, C_T, n_T, m_T)``. Grid ``(BH, DHp / BV)``:
    a program holds ``C[:, tile]`` in registers and walks the ``NC`` chunks in a
    ``fori_loop`` (Triton has no ordered grid axis); ``n`` and ``m`` are formed
    by every tile's program alike (``n_T``, ``m_T`` are read from tile 0's)."""
    BH, Tp, DH = q.shape
    NC, BV = p.NC, p.BV
    NV = DH // BV
    flat = lambda x: x.reshape(BH, -1)
    names = ["q", "k", "v", "b", "u", "a", "g"] + (["ok"] if "valid" in gates else [])
    names += ["C0", "n0", "m0", "h", "CT", "nT", "mT"]
    gate_vals = [flat(gates[x]) for x in ("b", "u", "a", "g")]
    gate_vals += [flat(gates["valid"])] if "valid" in gates else []
    whole = pl.BlockSpec((None, Tp, DH), lambda h, j: (h, 0, 0))
    tile = pl.BlockSpec((None, Tp, BV), lambda h, j: (h, 0, j))
    vec = lambda w: pl.BlockSpec((None, w), lambda h, j: (h, 0))
    C_tile = pl.BlockSpec((None, DH, BV), lambda h, j: (h, 0, j))
    specs = [whole, whole, tile, vec(Tp), vec(Tp), vec(Tp), vec(NC)]
    specs += [vec(Tp)] if "valid" in gates else []
    specs += [C_tile, vec(DH), vec(1)]
    out_shape = [
        jax.ShapeDtypeStruct((BH, Tp, DH), h_dtype),
        jax.ShapeDtypeStruct((BH, DH, DH), F32),
        jax.ShapeDtypeStruct((BH, NV, DH), F32),
        jax.ShapeDtypeStruct((BH, NV, 1), F32),
    ]
    per_tile = lambda w: pl.BlockSpec((None, None, w), lambda h, j: (h, j, 0))
    out_specs = [tile, C_tile, per_tile(DH), per_tile(1)]
    C0, n0, m0 = state
    h, CT, nT, mT = pl.pallas_call(
        functools.partial(_gpu_kernel, p, tuple(names)),
        grid=(BH, NV),
        in_specs=specs,
        out_specs=out_specs,
        out_shape=out_shape,
        compiler_params=plt.CompilerParams(num_warps=p.warps, num_stages=1),
        interpret=p.interpret,
    )(q, k, v, *gate_vals, C0, flat(n0), flat(m0))
    return h, CT, nT[:, :1], mT[:, :1]


def _gpu_kernel(p, names, *refs):
    r = dict(zip(names, refs, strict=True))
    L = p.L
    idx = jnp.arange(L, dtype=jnp.int32)
    causal = idx[:, None] >= idx[None, :]

    def gate(name, c, rows):
        x = r[name][pl.ds(c * L, L)].astype(F32)
        return x[:, None] if rows else x[None, :]

    def body(c, state):
        C, n, m = state
        s = pl.ds(c * L, L)
        h, C, n, m = chunk(
            p,
            r["q"][s, :].astype(F32),
            r["k"][s, :].astype(F32),
            r["v"][s, :].astype(F32),
            gate("b", c, True),
            gate("u", c, False),
            gate("a", c, True),
            r["g"][pl.ds(c, 1)][None, :],
            gate("ok", c, True) if "ok" in r else None,
            C,
            n,
            m,
            causal,
            None,
        )
        r["h"][s, :] = h.astype(r["h"].dtype)
        return C, n, m

    init = (r["C0"][...], r["n0"][...][None, :], r["m0"][...][None, :])
    C, n, m = lax.fori_loop(0, p.NC, body, init)
    r["CT"][...] = C
    r["nT"][...] = n[0]
    r["mT"][...] = m[0]

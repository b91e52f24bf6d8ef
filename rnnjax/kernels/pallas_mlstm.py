"""The chunkwise mLSTM forward as Pallas kernels (TPU: Mosaic; GPU: Triton), with
the contract of ``rnnjax.kernels.mlstm`` (shapes, equations, final carry).

Design: one kernel walks the chunks with the state on chip. A program owns one
``(batch, head)`` pair (on the GPU also one tile of ``BV`` value columns of
``C``) and visits its chunks in order, holding ``C (DH, DH)`` (the GPU: ``C[:,
tile]``), ``n (DH,)`` and ``m`` in float32 on chip from the first chunk to the
last. Per chunk of ``L`` steps it forms

- the intra-chunk part: ``S = Q K^T (L, L)``, the stabilised gate matrix
  ``D_tj = exp(b_t - b_j + i_j - m_t)`` (``j <= t``, ``b`` the cumulative log
  forget gates within the chunk), ``M = S * D``, ``M V`` and the row sums of
  ``M``;
- the inter-chunk part from the state at the chunk's start:
  ``exp(b_t + m_prev - m_t) (Q C, Q . n)``, with ``m_t = max(b_t + m_prev,
  max_j (b_t - b_j + i_j))``, which is the recurrent form's ``m_t``;
- ``h = num / (max(|den|, exp(-m_t)) + eps)`` (zero on invalid steps);
- the state at the chunk's end: ``m' = max(g + m_prev, max_t a_t)`` with
  ``g = b_L`` and ``a_t = g - b_t + i_t``, ``C' = exp(g + m_prev - m') C +
  (K * exp(a - m'))^T V``, ``n'`` likewise with the row sums of ``K``.

Why one kernel rather than two phases (the states at every chunk boundary by
a sequential pass, then the outputs of all chunks in parallel, as
``mlstm_kernels``' chunkwise kernels): the two-phase form writes and rereads
the ``NC`` boundary states, ``DH^2 / L`` floats per step and head (as much as
one of ``Q``, ``K``, ``V`` at ``DH = L``), and launches twice; the single
walk keeps the state on chip and reads every input once. It gives up the
parallelism over chunks, which matters when ``batch x heads`` (times the GPU's
value tiles) is too small to fill the chip (one sequence at inference). The
cumulative gate sums and the invalid steps are prepared outside the kernel
(XLA, ``O(T)`` per head): an invalid or padded step gets ``log f = 0`` and
``i = -1e30`` (it leaves ``C``, ``n``, ``m`` unchanged), its ``k`` and ``v``
are zeroed and its output is zeroed in the kernel.

Only the forward pass is a kernel. The derivative (a ``custom_vjp``, reverse
mode only) is the VJP of the plain-JAX ``mlstm_chunkwise`` at the same chunk
size, which recomputes its own forward pass; so under ``jax.grad`` alone, where
nothing reads the forward's outputs, XLA drops the kernel
(``jax.value_and_grad`` keeps it).

Arithmetic: float32 inside the kernels (bfloat16 inputs are widened); the TPU
products ask for full float32 precision, the GPU's run as TF32 (Triton's
default; expect about 1e-3 relative differences from the CPU).

Checked: values in Pallas' interpreter on the CPU (both flavours); compiled
without a device for TPU v4, v5e, v5p, v6e, the A100 and the H200
(``tests/accelerators``). Not yet run or timed on a device.

Size rules (``ValueError`` naming the size, before any compute), per flavour;
the memory of the target chip is `rnnjax.kernels.chips`'s table:

- TPU: ``chunk_size`` a multiple of 8 (16 with bfloat16 inputs), any ``DH``;
  the double-buffered blocks, ``C`` (in, out, scratch) and the chunk's
  intermediates must fit 85% of the core's VMEM (`tpu_vmem_bytes`): ``DH``
  up to 512 at ``L = 64`` on v4's 16 MiB, 1024 and more on v5e/v5p/v6e.
- GPU: ``chunk_size`` a power of two from 16 to 128; ``DH`` is padded to a
  power of two (at least 16); the value tile ``BV`` is the largest of 64, 32,
  16 whose staged product operands (`gpu_shared_bytes`) fit one block's opt-in
  shared memory (163 KiB on an A100, 227 KiB on an H100 / H200): ``DH`` up to
  512 at ``L = 64`` on either, 1024 at ``L = 32`` on an H200.

Shapes (legend of ``rnnjax``; ``NH`` heads, ``DH`` head size, ``L`` chunk
size, ``NC`` chunks): ``q, k, v (*B, NH, T, DH)``, ``i_pre, f_pre (*B, NH,
T)``, ``valid (*B, T)``, carry ``C (*B, NH, DH, DH)``, ``n (*B, NH, DH)``,
``m (*B, NH)``.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

from rnnjax.cells.base import check_positive_int
from rnnjax.cells.mlstm import MLSTMState
from rnnjax.kernels import chips
from rnnjax.kernels import mlstm as plain
from rnnjax.kernels import pallas_mlstm_kernels as kernels
from rnnjax.kernels._pallas_common import F32, next_pow2, round_up
from rnnjax.kernels.impl import Pallas

_KiB, _MiB = 1 << 10, 1 << 20
NEG = kernels.NEG
GPU_MAX_CHUNK = 128
SEQ_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))


@dataclasses.dataclass(frozen=True)
class MLSTMPlan:
    """Static configuration of one call (hashable: it keys the ``custom_vjp``).

    ``DHp`` is the head size the kernels see (padded to a power of two on the
    GPU), ``BV`` the GPU's value tile, ``vmem`` the TPU's scoped VMEM limit."""

    flavour: str
    interpret: bool
    L: int
    NC: int
    DH: int
    DHp: int
    BV: int
    eps: float
    forget_gate: str
    vmem: int = 0
    warps: int = 4


def tpu_vmem_bytes(L: int, DH: int, itemsize: int = 4) -> int:
    """VMEM that the TPU kernel asks of one core at chunk size ``L``, head size
    ``DH`` and ``itemsize``-byte ``q, k, v, h``: double-buffered blocks (``q, k,
    v, h``; the gate columns pad to 128 lanes; ``C``'s input and output blocks),
    the state scratch and the chunk's float32 intermediates (four ``(L, L)``,
    four ``(L, DH)``, two ``(DH, DH)``)."""
    lanes = round_up(DH, 128)
    blocks = 4 * L * lanes * itemsize + 3 * L * 128 * 4 + 8 * round_up(L, 128) * 4
    carry = 2 * DH * lanes * 4 + 2 * 8 * lanes * 4
    scratch = DH * lanes * 4 + 16 * lanes * 4
    work = 4 * L * round_up(L, 128) * 4 + 4 * L * lanes * 4 + 2 * DH * lanes * 4
    return 2 * (blocks + carry) + scratch + work


def gpu_shared_bytes(L: int, DHp: int, BV: int) -> int:
    """Shared memory that the GPU kernel asks of one block at chunk size ``L``,
    padded head size ``DHp`` and value tile ``BV``: the float32 operands of its
    largest product staged at once, ``Q C`` (``L x DHp`` and ``DHp x BV``) or
    ``M V`` (``L x L`` and ``L x BV``); Triton reuses the buffers between
    products. Exactly what Triton asked in every case compiled for sm_80 and
    sm_90 that did not fit."""
    return 4 * max(L * DHp + DHp * BV, L * L + L * BV)


def plan(*, L, T, DH, in_dtype, eps, forget_gate, options: Pallas) -> MLSTMPlan | str:
    """The plan for the resolved ``options``, or a reason string when the sizes
    break the flavour's rules or do not fit the target chip. The rules and the
    memory apply to ``chunk_size = L``; a sequence shorter than one chunk runs
    in one smaller chunk that keeps the rules (``T`` rounded up to the
    flavour's tiling), as the plain form runs one chunk of ``T``."""
    target = chips.chip(options.flavour, options.target)
    common = dict(interpret=options.interpret, DH=DH, eps=eps)
    common["forget_gate"] = forget_gate

    def chunks(size):
        size = min(L, size)
        return dict(L=size, NC=max(1, -(-T // size)))

    if options.flavour == "tpu":
        sub = 16 if in_dtype.itemsize < 4 else 8
        if L % sub:
            return (
                f"chunk_size must be a multiple of {sub} on TPU with "
                f"{in_dtype.name} inputs (the sublane tiling), got {L}"
            )
        common |= chunks(round_up(max(T, 1), sub))
        need = tpu_vmem_bytes(L, DH, in_dtype.itemsize)
        if need > 0.85 * target.memory:
            return (
                f"DH={DH} at chunk_size={L} needs about {need / _MiB:.1f} MiB of "
                f"VMEM, more than the {target.memory / _MiB:.0f} MiB of "
                f"{target.label} allow (use a smaller chunk_size or head size)"
            )
        vmem = int(min(0.9 * target.memory, need + 8 * _MiB))
        return MLSTMPlan("tpu", DHp=DH, BV=DH, vmem=vmem, **common)
    if L < 16 or L > GPU_MAX_CHUNK or L & (L - 1):
        return (
            f"chunk_size must be a power of two from 16 to {GPU_MAX_CHUNK} on GPU "
            f"(Triton's tiles), got {L}"
        )
    DHp = max(16, next_pow2(DH))
    tiles = [bv for bv in (64, 32, 16) if bv <= DHp]
    fitting = [bv for bv in tiles if gpu_shared_bytes(L, DHp, bv) <= target.memory]
    if not fitting:
        need = gpu_shared_bytes(L, DHp, tiles[-1])
        return (
            f"DH={DH} at chunk_size={L} stages {need // _KiB} KiB of shared memory, "
            f"more than the {target.memory // _KiB} KiB of {target.label} "
            "(use a smaller chunk_size or head size)"
        )
    BV = fitting[0]
    warps = 4 if DHp * BV <= 64 * 64 else 8
    common |= chunks(max(16, next_pow2(T)))
    return MLSTMPlan("gpu", DHp=DHp, BV=BV, warps=warps, **common)


# ------------------------------------------------------------------ checks


def _check(q, k, v, i_pre, f_pre, carry, valid, forget_gate, eps, chunk_size):
    """The plain forms' checks (`rnnjax.kernels.mlstm.check_core_args`), the
    chunk size, and the dtypes the kernels take."""
    plain.check_core_args(q, k, v, i_pre, f_pre, carry, valid, forget_gate, eps)
    check_positive_int(chunk_size, "chunk_size")
    if jnp.dtype(q.dtype) not in SEQ_DTYPES:
        raise TypeError(f"q: expected float32 or bfloat16, got {q.dtype}")
    for name, x in (("k", k), ("v", v)):
        if x.dtype != q.dtype:
            raise TypeError(f"{name}: expected q's dtype {q.dtype}, got {x.dtype}")


# ------------------------------------------------------------------ entry point


def mlstm_chunkwise_pallas(
    q,
    k,
    v,
    i_pre,
    f_pre,
    carry,
    *,
    valid=None,
    forget_gate="sigmoid",
    eps=1e-6,
    chunk_size=64,
    options: Pallas | None = None,
):
    """The chunkwise mLSTM with the forward pass in a Pallas kernel; the
    contract of ``rnnjax.kernels.mlstm.mlstm_chunkwise``.

    Args:
      q, k, v: ``(*B, NH, T, DH)`` (``k`` already scaled by ``1/sqrt(DH)``),
        float32 or bfloat16.
      i_pre, f_pre: ``(*B, NH, T)``, the input and forget gates'
        pre-activations.
      carry: ``MLSTMState(C (*B, NH, DH, DH), n (*B, NH, DH), m (*B, NH))``.
      valid: ``(*B, T)`` bool or None; an invalid step leaves the state
        unchanged and outputs zero.
      forget_gate: ``"sigmoid"`` (``log f = logsigmoid(f_pre)``) or ``"exp"``
        (``log f = f_pre``).
      eps: added to the normaliser.
      chunk_size: steps per chunk ``L`` (the flavour's rules in the module
        docstring); ``T`` need not be a multiple.
      options: a `Pallas` (``flavour``, ``interpret``, ``target``; its
        ``gpu_design`` is not read), default ``Pallas()``: TPU kernels on a
        TPU backend, GPU otherwise, in the interpreter on the CPU.

    Returns:
      ``(carry_T, h)``: the carry after the last valid step (the type of
      ``carry``, its dtypes) and ``h (*B, NH, T, DH)`` in the dtype of ``q``
      and ``C`` together (``jnp.result_type``), as the plain forms.

    Derivatives: reverse mode only (a ``custom_vjp``), the VJP of the plain-JAX
    ``mlstm_chunkwise``.
    """
    _check(q, k, v, i_pre, f_pre, carry, valid, forget_gate, eps, chunk_size)
    options = (options or Pallas()).resolved()
    batch, (NH, T, DH) = q.shape[:-3], q.shape[-3:]
    if T == 0 or q.size == 0 or DH == 0:
        return carry, jnp.zeros(q.shape, jnp.result_type(q, carry.C))
    p = plan(
        L=chunk_size,
        T=T,
        DH=DH,
        in_dtype=jnp.dtype(q.dtype),
        eps=float(eps),
        forget_gate=forget_gate,
        options=options,
    )
    if isinstance(p, str):
        raise ValueError(f"impl: 'pallas' cannot run this shape: {p}")
    C, n, m, h = _core(p, q, k, v, i_pre, f_pre, carry.C, carry.n, carry.m, valid)
    del batch, NH
    return carry._replace(C=C, n=n, m=m), h


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _core(p, q, k, v, i_pre, f_pre, C0, n0, m0, valid):
    return _forward(p, q, k, v, i_pre, f_pre, C0, n0, m0, valid)


def _forward(p, q, k, v, i_pre, f_pre, C0, n0, m0, valid):
    batch, (NH, T, DH) = q.shape[:-3], q.shape[-3:]
    BH, L, NC, DHp = math.prod(batch) * NH, p.L, p.NC, p.DHp
    Tp = NC * L
    seq = lambda x: _pad_to(x.reshape(BH, T, DH), (BH, Tp, DHp))
    log_f = f_pre.astype(F32)
    log_f = jax.nn.log_sigmoid(log_f) if p.forget_gate == "sigmoid" else log_f
    i = i_pre.astype(F32)
    if valid is not None:
        vb = jnp.broadcast_to(valid[..., None, :], (*batch, NH, T))
        log_f, i = jnp.where(vb, log_f, 0.0), jnp.where(vb, i, NEG)
    pad_t = lambda x, fill: jnp.pad(
        x.reshape(BH, T), ((0, 0), (0, Tp - T)), constant_values=fill
    ).reshape(BH, NC, L)
    log_f, i = pad_t(log_f, 0.0), pad_t(i, NEG)
    b = jnp.cumsum(log_f, axis=-1)  # within the chunk, inclusive
    g = b[..., -1:]
    gates = dict(b=b, u=i - b, a=g - b + i, g=g)
    if valid is not None:
        ok = jnp.broadcast_to(valid[..., None, :], (*batch, NH, T)).astype(F32)
        gates["valid"] = pad_t(ok, 0.0)
    state = (
        _pad_to(C0.reshape(BH, DH, DH).astype(F32), (BH, DHp, DHp)),
        _pad_to(n0.reshape(BH, 1, DH).astype(F32), (BH, 1, DHp)),
        m0.reshape(BH, 1, 1).astype(F32),
    )
    run = kernels.tpu_forward if p.flavour == "tpu" else kernels.gpu_forward
    h_dtype = jnp.result_type(q, C0)
    h, CT, nT, mT = run(p, seq(q), seq(k), seq(v), gates, state, h_dtype)
    h = h[:, :T, :DH].reshape(q.shape)
    heads = q.shape[:-2]
    CT = CT[:, :DH, :DH].reshape(*heads, DH, DH).astype(C0.dtype)
    nT = nT[:, 0, :DH].reshape(*heads, DH).astype(n0.dtype)
    mT = mT.reshape(heads).astype(m0.dtype)
    return CT, nT, mT, h


def _pad_to(x, shape):
    return jnp.pad(x, [(0, n - s) for s, n in zip(x.shape, shape, strict=True)])


def _reference(p, valid):
    """The plain-JAX chunkwise form of this plan, a function of the
    differentiable arguments."""

    def f(q, k, v, i_pre, f_pre, C0, n0, m0):
        carry, h = plain.mlstm_chunkwise(
            q,
            k,
            v,
            i_pre,
            f_pre,
            MLSTMState(C=C0, n=n0, m=m0),
            valid=valid,
            forget_gate=p.forget_gate,
            eps=p.eps,
            chunk_size=p.L,
        )
        return carry.C, carry.n, carry.m, h

    return f


def _core_fwd(p, q, k, v, i_pre, f_pre, C0, n0, m0, valid):
    out = _forward(p, q, k, v, i_pre, f_pre, C0, n0, m0, valid)
    return out, (q, k, v, i_pre, f_pre, C0, n0, m0, valid)


def _core_bwd(p, res, cts):
    *primals, valid = res
    out, vjp = jax.vjp(_reference(p, valid), *primals)
    grads = vjp(tuple(c.astype(o.dtype) for c, o in zip(cts, out, strict=True)))
    return (*(g.astype(x.dtype) for g, x in zip(grads, primals, strict=True)), None)


_core.defvjp(_core_fwd, _core_bwd)

"""Pallas TPU (Mosaic) kernels for the LSTM and GRU recurrence.

Grid ``(batch tiles: "parallel", time blocks: "arbitrary")``. Per batch tile the
input block ``zs (TT, BB, G*Hp)`` is pipelined by Pallas while ``h`` and ``c`` live
in VMEM scratch across the time blocks (set from ``carry0`` at block 0); ``W_h (Hp,
G*Hp)`` stays resident in VMEM, single-buffered (``pl.Buffered(1)``: its block never
changes). An inner ``fori_loop`` walks the ``TT`` steps of a block: one
``(BB, Hp) x (Hp, G*Hp)`` product on the MXU and the fused gate arithmetic per step.
The backward kernel has the same grid with the time index map reversed
(``s -> n_blocks - 1 - s``) and walks each block backwards, carrying ``dh`` (and
``dc``) in scratch; per step one ``(BB, G*Hp) x (G*Hp, Hp)`` product (``da W^T``).

Block rules: ``H`` is padded to a multiple of 128 (so every gate's slice is
lane-aligned), the batch tile ``BB`` to a multiple of 8 (16 with 16-bit sequences),
time to a multiple of ``TT`` (padded steps are invalid). ``W_h`` must fit VMEM with
the pipelined blocks, in the VMEM of the target chip (`rnnjax.kernels.chips`:
in float32 up to ``H = 512`` on v4's 16 MiB, 1024 on v5p's 64 MiB); a larger shape
raises (``impl="pallas"``) or runs ``fused`` (``"auto"``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from rnnjax.kernels import _pallas_common as common
from rnnjax.kernels import chips
from rnnjax.kernels._pallas_common import F32

_MiB = 1 << 20
_BLOCK_BUDGET = 16 * _MiB  # the pipelined (double-buffered) blocks of one call
_MAX_TT = 32  # steps per time block
_MAX_BB = 128  # rows per batch tile


def _vmem_need(kind, B, H, compute_dtype, seq_dtypes, out_dtype, capacity, T=_MAX_TT):
    """``(need, w_bytes, BB, TT)``: the VMEM one call asks (``W_h``, the
    double-buffered blocks of ``TT`` steps, the state and gradient buffers); the
    blocks take at most a quarter of ``capacity`` (and 16 MiB)."""
    m = common.LSTMMath() if kind == "lstm" else common.GRUMath()
    G, R = m.gates, m.residuals
    Hp = common.round_up(H, 128)
    sub = 16 if min(d.itemsize for d in (*seq_dtypes, out_dtype)) < 4 else 8
    BB = min(common.round_up(B, sub), _MAX_BB)
    zb, ob = seq_dtypes[0].itemsize, out_dtype.itemsize
    flags = 2 * 128 * 4  # a (BB, 1) block pads to 128 lanes
    fwd = BB * (G * Hp * zb + Hp * ob + (R + 1) * Hp * 4 + flags)
    bwd = BB * ((R + 1) * Hp * 4 + Hp * ob + (G + 1) * Hp * 4 + flags)
    per_step = max(fwd, bwd)
    budget = min(_BLOCK_BUDGET, capacity // 4)
    TT = max(1, min(_MAX_TT, T, budget // (2 * per_step)))
    w_bytes = Hp * G * Hp * compute_dtype.itemsize
    need = w_bytes + 2 * TT * per_step + 10 * BB * Hp * 4 + 4 * G * Hp * 4
    return need, w_bytes, BB, TT


def fits(kind, H, compute_dtype, chip, B=_MAX_BB) -> bool:
    """Whether the kernel holds ``H`` in ``chip``'s VMEM (float32 inputs and
    outputs; a full batch tile by default)."""
    f32 = jnp.dtype(jnp.float32)
    need = _vmem_need(kind, B, H, compute_dtype, (f32, f32), f32, chip.memory)[0]
    return need <= 0.85 * chip.memory


def plan(
    *, kind, T, B, H, compute_dtype, out_dtype, seq_dtypes, options, unroll
) -> common.Plan | str:
    """Tile sizes and the VMEM limit for the target chip (`chips.chip`); a reason
    string when ``W_h`` and the blocks do not fit its VMEM."""
    Hp = common.round_up(H, 128)
    target = chips.chip("tpu", options.target)
    capacity = target.memory
    need, w_bytes, BB, TT = _vmem_need(
        kind, B, H, compute_dtype, seq_dtypes, out_dtype, capacity, T
    )
    if need > 0.85 * capacity:
        return (
            f"W_h ({w_bytes / _MiB:.1f} MiB) and the pipelined blocks need about "
            f"{need / _MiB:.0f} MiB of VMEM, more than the {capacity / _MiB:.0f} MiB "
            f"of {target.label} allow (use impl='fused', or dtype=jnp.bfloat16)"
        )
    limit = int(min(0.9 * capacity, need + 8 * _MiB))
    return common.Plan(
        kind=kind,
        flavour="tpu",
        design="sequence",
        interpret=options.interpret,
        T=T,
        B=B,
        H=H,
        Tp=common.round_up(T, TT),
        Bp=common.round_up(B, BB),
        Hp=Hp,
        compute_dtype=compute_dtype,
        out_dtype=out_dtype,
        unroll=max(1, min(int(unroll), TT)),
        blocks=(("BB", BB), ("TT", TT), ("vmem", limit)),
    )


# ------------------------------------------------------------------ specs, calls


def _specs(plan, reverse=False):
    BB, TT = plan.block("BB"), plan.block("TT")
    n = plan.Tp // TT
    time = (lambda s: n - 1 - s) if reverse else (lambda s: s)

    def seq(width):
        return pl.BlockSpec((TT, BB, width), lambda b, s: (time(s), b, 0))

    row = pl.BlockSpec((BB, plan.Hp), lambda b, s: (b, 0))

    def whole(shape):  # same block for every program: one buffer is enough
        return pl.BlockSpec(
            shape, lambda b, s: (0,) * len(shape), pipeline_mode=pl.Buffered(1)
        )

    return seq, row, whole


def _call(kernel, plan, ins, outs, scratch):
    """``pallas_call`` over named ``(name, array, spec)`` inputs and ``(name,
    ShapeDtypeStruct, spec)`` outputs (``None`` arrays are left out); returns the
    outputs by name."""
    ins = [i for i in ins if i[1] is not None]
    names = [i[0] for i in ins] + [o[0] for o in outs] + [s[0] for s in scratch]
    out = pl.pallas_call(
        functools.partial(kernel, plan, tuple(names)),
        grid=(plan.Bp // plan.block("BB"), plan.Tp // plan.block("TT")),
        in_specs=[i[2] for i in ins],
        out_specs=[o[2] for o in outs],
        out_shape=[o[1] for o in outs],
        scratch_shapes=[pltpu.VMEM(s[1], F32) for s in scratch],
        compiler_params=pltpu.CompilerParams(
            dimension_semantics=("parallel", "arbitrary"),
            vmem_limit_bytes=plan.block("vmem"),
        ),
        interpret=plan.interpret,
    )(*[i[1] for i in ins])
    return dict(zip([o[0] for o in outs], out, strict=True))


def _flag(refs, name, t, shape):
    """The step's 0/1 flag broadcast to ``shape`` as booleans (or None)."""
    if name not in refs:
        return None
    return jnp.broadcast_to(refs[name][t], shape) > 0.5


def _gate(x, k, Hp):
    return x[:, k * Hp : (k + 1) * Hp]  # lane-aligned: Hp is a multiple of 128


# ------------------------------------------------------------------ forward


def forward(plan, a, training):
    """``(ys (Tp, Bp, Hp), hT, cT, residuals, hin)``; the layout of
    ``_pallas_common``."""
    m, Tp, Bp, Hp = plan.math, plan.Tp, plan.Bp, plan.Hp
    G, R, BB = m.gates, m.residuals, plan.block("BB")
    seq, row, whole = _specs(plan)
    opt = lambda x, f: None if x is None else f(x)
    ins = [
        ("zs", a["zs"].reshape(Tp, Bp, G * Hp), seq(G * Hp)),
        ("w", a["w"].reshape(Hp, G * Hp), whole((Hp, G * Hp))),
        ("bias", opt(a["bias"], lambda b: b.reshape(1, G * Hp)), whole((1, G * Hp))),
        ("bhn", a["bhn"], whole((1, Hp))),
        ("h0", a["h0"], row),
        ("c0", a["c0"], row),
        *common.step_operands(a, seq, row),
    ]
    outs = [("ys", jax.ShapeDtypeStruct((Tp, Bp, Hp), plan.out_dtype), seq(Hp))]
    outs += common.state_outputs(m, (Bp, Hp), plan.out_dtype, row, ("hT", "cT"))
    if training:
        outs += [
            ("res", jax.ShapeDtypeStruct((Tp, Bp, R * Hp), F32), seq(R * Hp)),
            ("hin", jax.ShapeDtypeStruct((Tp, Bp, Hp), F32), seq(Hp)),
        ]
    scratch = [("h", (BB, Hp))] + ([("c", (BB, Hp))] if m.has_c else [])
    out = _call(_forward_kernel, plan, ins, outs, scratch)
    res = out.get("res")
    return out["ys"], out["hT"], out.get("cT"), res, out.get("hin")


def _forward_kernel(plan, names, *refs):
    r = dict(zip(names, refs, strict=True))
    m, Hp, G = plan.math, plan.Hp, plan.math.gates
    BB, TT = plan.block("BB"), plan.block("TT")
    s = pl.program_id(1)

    @pl.when(s == 0)
    def _():
        r["h"][...] = r["h0"][...].astype(F32)
        if m.has_c:
            r["c"][...] = r["c0"][...].astype(F32)

    load = lambda name: r[name][...].astype(F32) if name in r else None
    bias, bhn, mask = load("bias"), load("bhn"), load("mask")
    carry0 = (load("h0"), load("c0")) if "resets" in r else (None, None)

    def hw_of(h_in):
        op = h_in if mask is None else h_in * mask
        hw = jnp.dot(
            op.astype(plan.compute_dtype), r["w"][...], preferred_element_type=F32
        )
        return [_gate(hw, k, Hp) for k in range(G)]

    def step(t, carry):
        z = r["zs"][t].astype(F32)
        z = z if bias is None else z + bias
        valid = _flag(r, "valid", t, (BB, Hp))
        reset = _flag(r, "resets", t, (BB, Hp))
        carry, y, res, h_in = common.forward_select(
            m,
            valid,
            reset,
            carry,
            carry0,
            [_gate(z, k, Hp) for k in range(G)],
            hw_of,
            bhn,
        )
        r["ys"][t] = y.astype(r["ys"].dtype)
        if "res" in r:
            for k, x in enumerate(res):
                r["res"][t, :, k * Hp : (k + 1) * Hp] = x
            r["hin"][t] = h_in
        return carry

    init = (r["h"][...], r["c"][...] if m.has_c else None)
    h, c = lax.fori_loop(0, TT, step, init, unroll=plan.unroll)
    r["h"][...] = h
    if m.has_c:
        r["c"][...] = c

    @pl.when(s == pl.num_programs(1) - 1)
    def _():
        r["hT"][...] = h.astype(r["hT"].dtype)
        if m.has_c:
            r["cT"][...] = c.astype(r["cT"].dtype)


# ------------------------------------------------------------------ backward


def backward(plan, a):
    """``(da (Tp, Bp, G, Hp), dan (GRU) or None, dh0, dc0)``, float32."""
    m, Tp, Bp, Hp = plan.math, plan.Tp, plan.Bp, plan.Hp
    G, R, BB = m.gates, m.residuals, plan.block("BB")
    seq, row, whole = _specs(plan, reverse=True)
    ins = [
        ("w", a["w"].reshape(Hp, G * Hp), whole((Hp, G * Hp))),
        ("res", a["res"], seq(R * Hp)),
        ("hin", None if m.has_c else a["hin"], seq(Hp)),  # the GRU's update reads it
        ("dys", a["dys"], seq(Hp)),
        ("dhT", a["dhT"], row),
        ("dcT", a["dcT"], row),
        *common.step_operands(a, seq, row),
    ]
    outs = [("da", jax.ShapeDtypeStruct((Tp, Bp, G * Hp), F32), seq(G * Hp))]
    outs += (
        [] if m.has_c else [("dan", jax.ShapeDtypeStruct((Tp, Bp, Hp), F32), seq(Hp))]
    )
    outs += common.state_outputs(m, (Bp, Hp), F32, row, ("dh0", "dc0"))
    scratch = [("dh", (BB, Hp))] + ([("dc", (BB, Hp))] if m.has_c else [])
    if a["resets"] is not None:
        scratch += [("acc_h", (BB, Hp))] + ([("acc_c", (BB, Hp))] if m.has_c else [])
    out = _call(_backward_kernel, plan, ins, outs, scratch)
    da = out["da"].reshape(Tp, Bp, G, Hp)
    return da, out.get("dan"), out["dh0"], out.get("dc0")


def _backward_kernel(plan, names, *refs):
    r = dict(zip(names, refs, strict=True))
    m, Hp, R = plan.math, plan.Hp, plan.math.residuals
    BB, TT = plan.block("BB"), plan.block("TT")
    s = pl.program_id(1)
    resets = "resets" in r

    @pl.when(s == 0)
    def _():
        r["dh"][...] = r["dhT"][...]
        if m.has_c:
            r["dc"][...] = r["dcT"][...]
        if resets:
            r["acc_h"][...] = jnp.zeros((BB, Hp), F32)
            if m.has_c:
                r["acc_c"][...] = jnp.zeros((BB, Hp), F32)

    mask = r["mask"][...].astype(F32) if "mask" in r else None

    def step(i, carry):
        t = TT - 1 - i
        dcarry, acc = carry
        valid = _flag(r, "valid", t, (BB, Hp))
        reset = _flag(r, "resets", t, (BB, Hp))
        dh_new, dc_new = common.step_cotangents(valid, r["dys"][t].astype(F32), dcarry)
        res = [r["res"][t, :, k * Hp : (k + 1) * Hp] for k in range(R)]
        h_in = None if m.has_c else r["hin"][t]
        da, dan, dh_dir, dc_in = m.backward(dh_new, dc_new, res, h_in)
        for k, x in enumerate(da):
            r["da"][t, :, k * Hp : (k + 1) * Hp] = x
        if dan is not None:
            r["dan"][t] = dan
        dop = lax.dot_general(  # da_t W^T, one product over all gates
            r["da"][t].astype(plan.compute_dtype),
            r["w"][...],
            (((1,), (1,)), ((), ())),
            preferred_element_type=F32,
        )
        g_h = dop if mask is None else dop * mask
        g_h = g_h if dh_dir is None else g_h + dh_dir
        return common.backward_select(valid, reset, dcarry, (g_h, dc_in), acc)

    dcarry = (r["dh"][...], r["dc"][...] if m.has_c else None)
    acc = None
    if resets:
        acc = (r["acc_h"][...], r["acc_c"][...] if m.has_c else None)
    (dh, dc), acc = lax.fori_loop(0, TT, step, (dcarry, acc), unroll=plan.unroll)
    r["dh"][...] = dh
    if m.has_c:
        r["dc"][...] = dc
    if resets:
        r["acc_h"][...] = acc[0]
        if m.has_c:
            r["acc_c"][...] = acc[1]

    @pl.when(s == pl.num_programs(1) - 1)
    def _():
        r["dh0"][...] = dh if acc is None else dh + acc[0]
        if m.has_c:
            r["dc0"][...] = dc if acc is None else dc + acc[1]


TPU = common.Flavour(plan=plan, forward=forward, backward=backward)

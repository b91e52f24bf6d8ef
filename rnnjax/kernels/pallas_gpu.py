"""Pallas GPU (Triton) kernels for the LSTM and GRU recurrence.

Pallas has no grid-wide barrier, so one launch cannot split ``W_h`` across blocks
and step them together. Two designs, by size (``Pallas(gpu_design=...)`` picks
one; docs/kernels.md):

- ``"sequence"`` (small ``H``: ``W_h`` within one block's shared memory, 163 KiB
  on an A100 and 227 KiB on an H100 / H200, so ``H <= 64`` for the LSTM in
  float32 and ``H <= 128`` in bfloat16; `rnnjax.kernels.chips`): one program
  per batch tile of 16 loads ``W_h`` once (one ``(Hp, Hp)`` matrix per gate, held
  on chip) and walks all ``T`` steps in a ``fori_loop``: one launch forward, one
  backward (reverse loop carrying ``dh``, ``dc``).
- ``"stepwise"`` (larger ``H``): one launch per step inside ``lax.scan``, grid
  ``(batch tiles, column tiles of BN hidden units)``; a program forms the ``G``
  gate columns of its tile, ``h_{t-1} W_h[:, tile]`` over a ``K`` loop, and the
  gate arithmetic in the same kernel (no ``(B, G*H)`` round trip through memory).
  ``W_h`` is read from L2 each step. The backward launch of step ``t`` first
  finishes step ``t + 1`` (``da_{t+1} W_h^T`` for its rows, the reset and length
  bookkeeping) and then does step ``t``'s gate derivatives; step 0 is finished
  by one XLA product.

Triton rules: every loaded tile has power-of-two sides (``Hp`` is ``H`` rounded up
to a power of two, at least 16; batch tiles of 16, 32 or 64), products need sides
of at least 16, gates are addressed through a separate axis (``(…, G, Hp)``
layout) rather than sliced. A float32 product runs as TF32 on the GPU.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plt

from rnnjax.kernels import _pallas_common as common
from rnnjax.kernels import chips
from rnnjax.kernels._pallas_common import F32

_SEQUENCE_BB = 16
_TARGET_PROGRAMS = 264  # two per multiprocessor of an H100 / H200 (132)


def sequence_shared_bytes(kind, H, compute_dtype) -> int:
    """Shared memory that the ``sequence`` design asks of one block: ``W_h``
    (``G`` matrices ``(Hp, Hp)``), a float32 ``(BB, Hp)`` buffer and one in the
    compute dtype (``h`` as the product's operand). Exactly what Triton asked
    in every case compiled for sm_80 and sm_90."""
    Hp = max(16, common.next_pow2(H))
    gates = (common.LSTMMath() if kind == "lstm" else common.GRUMath()).gates
    itemsize = compute_dtype.itemsize
    return gates * Hp * Hp * itemsize + _SEQUENCE_BB * Hp * (4 + itemsize)


def sequence_fits(kind, H, compute_dtype, chip) -> bool:
    """Whether the ``sequence`` design holds ``H`` within one block of ``chip``."""
    return sequence_shared_bytes(kind, H, compute_dtype) <= chip.memory


def plan(
    *, kind, T, B, H, compute_dtype, out_dtype, seq_dtypes, options, unroll
) -> common.Plan | str:
    """The design and tiles (a reason string when a named design does not fit):
    ``sequence`` where ``W_h`` fits one block of the target chip
    (`chips.chip`), else ``stepwise``."""
    Hp = max(16, common.next_pow2(H))
    Bp = common.round_up(B, 16)
    target = chips.chip("gpu", options.target)
    fits = sequence_fits(kind, H, compute_dtype, target)
    design = options.gpu_design or ("sequence" if fits else "stepwise")
    if design == "sequence" and not fits:
        need = sequence_shared_bytes(kind, H, compute_dtype)
        return (
            f"gpu_design='sequence' holds W_h in one block's shared memory: "
            f"{need // 1024} KiB at H={H} in {compute_dtype.name}, more than the "
            f"{target.memory // 1024} KiB of {target.label} (use gpu_design="
            "'stepwise' or None)"
        )
    if design == "sequence":
        blocks = (("BB", _SEQUENCE_BB), ("warps", 4), ("stages", 1))
    else:
        BB = next(b for b in (64, 32, 16) if Bp % b == 0)
        BN = min(64, Hp)
        while BN > 16 and (Bp // BB) * (Hp // BN) < _TARGET_PROGRAMS:
            BN //= 2
        blocks = (("BB", BB), ("BN", BN), ("BK", min(64, Hp)), ("warps", 4))
        blocks += (("stages", 2),)
    return common.Plan(
        kind=kind,
        flavour="gpu",
        design=design,
        interpret=options.interpret,
        T=T,
        B=B,
        H=H,
        Tp=T,
        Bp=Bp,
        Hp=Hp,
        compute_dtype=compute_dtype,
        out_dtype=out_dtype,
        unroll=1,  # Triton lowers only unroll=1 loops
        blocks=blocks,
    )


def _call(kernel, plan, grid, ins, outs):
    """``pallas_call`` over named ``(name, array, spec)`` inputs and ``(name,
    ShapeDtypeStruct, spec)`` outputs (``None`` arrays left out); returns the
    outputs by name."""
    ins = [i for i in ins if i[1] is not None]
    names = (tuple(i[0] for i in ins), tuple(o[0] for o in outs))
    out = pl.pallas_call(
        functools.partial(kernel, plan, names),
        grid=grid,
        in_specs=[i[2] for i in ins],
        out_specs=[o[2] for o in outs],
        out_shape=[o[1] for o in outs],
        compiler_params=plt.CompilerParams(
            num_warps=plan.block("warps"), num_stages=plan.block("stages")
        ),
        interpret=plan.interpret,
    )(*[i[1] for i in ins])
    return dict(zip([o[0] for o in outs], out, strict=True))


def _refs(names, refs):
    """``(inputs, outputs)``: the kernel's refs by name (an output may carry an
    input's name: the value of the next step)."""
    in_names, out_names = names
    ins = dict(zip(in_names, refs[: len(in_names)], strict=True))
    return ins, dict(zip(out_names, refs[len(in_names) :], strict=True))


def _flag(refs, name, index, shape):
    """A 0/1 flag ``(BB, 1)`` broadcast to ``shape`` as booleans (or None)."""
    if name not in refs:
        return None
    return jnp.broadcast_to(refs[name][index], shape) > 0.5


def _dot_t(a, b):
    """``a @ b^T`` in float32 (contracting the last axis of both)."""
    return lax.dot_general(a, b, (((1,), (1,)), ((), ())), preferred_element_type=F32)


def forward(plan, a, training):
    if plan.design == "sequence":
        return _sequence_forward(plan, a, training)
    return _stepwise_forward(plan, a, training)


def backward(plan, a):
    if plan.design == "sequence":
        return _sequence_backward(plan, a)
    return _stepwise_backward(plan, a)


# ------------------------------------------------------------ sequence design


def _sequence_specs(plan):
    T, BB, Hp, G = plan.Tp, plan.block("BB"), plan.Hp, plan.math.gates
    seq = lambda *tail: pl.BlockSpec(
        (T, BB, *tail), lambda b: (0, b) + (0,) * len(tail)
    )
    row = pl.BlockSpec((BB, Hp), lambda b: (b, 0))
    whole = lambda shape: pl.BlockSpec(shape, lambda b: (0,) * len(shape))
    return seq, row, whole, (G, Hp)


def _sequence_forward(plan, a, training):
    m, T, Bp, Hp = plan.math, plan.Tp, plan.Bp, plan.Hp
    seq, row, whole, gh = _sequence_specs(plan)
    ins = [
        ("zs", a["zs"], seq(*gh)),
        ("w", a["w"], whole((Hp, *gh))),
        ("bias", a["bias"], whole(gh)),
        ("bhn", a["bhn"], whole((1, Hp))),
        ("h0", a["h0"], row),
        ("c0", a["c0"], row),
        *common.step_operands(a, seq, row),
    ]
    outs = [("ys", jax.ShapeDtypeStruct((T, Bp, Hp), plan.out_dtype), seq(Hp))]
    outs += common.state_outputs(m, (Bp, Hp), plan.out_dtype, row, ("hT", "cT"))
    if training:
        R = m.residuals
        outs += [
            ("res", jax.ShapeDtypeStruct((T, Bp, R, Hp), F32), seq(R, Hp)),
            ("hin", jax.ShapeDtypeStruct((T, Bp, Hp), F32), seq(Hp)),
        ]
    out = _call(_sequence_forward_kernel, plan, (Bp // plan.block("BB"),), ins, outs)
    return out["ys"], out["hT"], out.get("cT"), out.get("res"), out.get("hin")


def _sequence_forward_kernel(plan, names, *refs):
    ins, outs = _refs(names, refs)
    r = {**ins, **outs}
    m, Hp, G, BB = plan.math, plan.Hp, plan.math.gates, plan.block("BB")
    load = lambda name: r[name][...].astype(F32) if name in r else None
    mask, bhn = load("mask"), load("bhn")
    carry0 = (load("h0"), load("c0")) if "resets" in r else (None, None)
    w = [r["w"][:, k, :] for k in range(G)]  # loaded once, held for all steps
    bias = (
        [r["bias"][pl.ds(k, 1), :].astype(F32) for k in range(G)]
        if "bias" in r
        else None
    )

    def hw_of(h_in):
        op = (h_in if mask is None else h_in * mask).astype(plan.compute_dtype)
        return [jnp.dot(op, wk, preferred_element_type=F32) for wk in w]

    def step(t, carry):
        z = [r["zs"][t, :, k, :].astype(F32) for k in range(G)]
        z = z if bias is None else [zk + bk for zk, bk in zip(z, bias, strict=True)]
        valid = _flag(r, "valid", t, (BB, Hp))
        reset = _flag(r, "resets", t, (BB, Hp))
        carry, y, res, h_in = common.forward_select(
            m, valid, reset, carry, carry0, z, hw_of, bhn
        )
        r["ys"][t] = y.astype(r["ys"].dtype)
        if "res" in r:
            for k, x in enumerate(res):
                r["res"][t, :, k, :] = x
            r["hin"][t] = h_in
        return carry

    init = (load("h0"), load("c0"))
    h, c = lax.fori_loop(0, plan.Tp, step, init)
    r["hT"][...] = h.astype(r["hT"].dtype)
    if m.has_c:
        r["cT"][...] = c.astype(r["cT"].dtype)


def _sequence_backward(plan, a):
    m, T, Bp, Hp = plan.math, plan.Tp, plan.Bp, plan.Hp
    seq, row, whole, gh = _sequence_specs(plan)
    ins = [
        ("w", a["w"], whole((Hp, *gh))),
        ("res", a["res"], seq(m.residuals, Hp)),
        ("hin", None if m.has_c else a["hin"], seq(Hp)),
        ("dys", a["dys"], seq(Hp)),
        ("dhT", a["dhT"], row),
        ("dcT", a["dcT"], row),
        *common.step_operands(a, seq, row),
    ]
    outs = [("da", jax.ShapeDtypeStruct((T, Bp, *gh), F32), seq(*gh))]
    outs += (
        [] if m.has_c else [("dan", jax.ShapeDtypeStruct((T, Bp, Hp), F32), seq(Hp))]
    )
    outs += common.state_outputs(m, (Bp, Hp), F32, row, ("dh0", "dc0"))
    out = _call(_sequence_backward_kernel, plan, (Bp // plan.block("BB"),), ins, outs)
    return out["da"], out.get("dan"), out["dh0"], out.get("dc0")


def _sequence_backward_kernel(plan, names, *refs):
    ins, outs = _refs(names, refs)
    r = {**ins, **outs}
    m, Hp, G, BB = plan.math, plan.Hp, plan.math.gates, plan.block("BB")
    mask = r["mask"][...].astype(F32) if "mask" in r else None
    w = [r["w"][:, k, :] for k in range(G)]

    def step(i, carry):
        t = plan.Tp - 1 - i
        dcarry, acc = carry
        valid = _flag(r, "valid", t, (BB, Hp))
        reset = _flag(r, "resets", t, (BB, Hp))
        dh_new, dc_new = common.step_cotangents(valid, r["dys"][t].astype(F32), dcarry)
        res = [r["res"][t, :, k, :] for k in range(m.residuals)]
        h_in = None if m.has_c else r["hin"][t]
        da, dan, dh_dir, dc_in = m.backward(dh_new, dc_new, res, h_in)
        for k, x in enumerate(da):
            r["da"][t, :, k, :] = x
        if dan is not None:
            r["dan"][t] = dan
        dop = _dot_t(da[0].astype(plan.compute_dtype), w[0])
        for k in range(1, G):
            dop = dop + _dot_t(da[k].astype(plan.compute_dtype), w[k])
        g_h = dop if mask is None else dop * mask
        g_h = g_h if dh_dir is None else g_h + dh_dir
        return common.backward_select(valid, reset, dcarry, (g_h, dc_in), acc)

    zeros = jnp.zeros((BB, Hp), F32)
    dcarry = (r["dhT"][...], r["dcT"][...] if m.has_c else None)
    acc = None
    if "resets" in r:
        acc = (zeros, zeros if m.has_c else None)
    (dh, dc), acc = lax.fori_loop(0, plan.Tp, step, (dcarry, acc))
    r["dh0"][...] = dh if acc is None else dh + acc[0]
    if m.has_c:
        r["dc0"][...] = dc if acc is None else dc + acc[1]


# ------------------------------------------------------------ stepwise design


def _stepwise_specs(plan):
    BB, BN, Hp = plan.block("BB"), plan.block("BN"), plan.Hp
    tile = pl.BlockSpec((BB, BN), lambda b, j: (b, j))
    full_row = pl.BlockSpec((BB, Hp), lambda b, j: (b, 0))
    gates = lambda n: pl.BlockSpec((BB, n, BN), lambda b, j: (b, 0, j))
    flag = pl.BlockSpec((BB, 1), lambda b, j: (b, 0))
    grid = (plan.Bp // BB, Hp // BN)
    return tile, full_row, gates, flag, grid


def _stepwise_forward(plan, a, training):
    m, Bp, Hp, G = plan.math, plan.Bp, plan.Hp, plan.math.gates
    BN, R = plan.block("BN"), m.residuals
    tile, full_row, gates, flag, grid = _stepwise_specs(plan)
    resets, lstm = a["resets"], m.has_c
    fixed = [
        ("h0_row", None if resets is None else a["h0"], full_row),
        ("h0", None if resets is None else a["h0"], tile),
        ("c0", None if resets is None else a["c0"], tile),
        ("mask_row", a["mask"], full_row),
        ("w", a["w"], pl.BlockSpec((Hp, G, BN), lambda b, j: (0, 0, j))),
        ("bias", a["bias"], pl.BlockSpec((G, BN), lambda b, j: (0, j))),
        ("bhn", a["bhn"], pl.BlockSpec((1, BN), lambda b, j: (0, j))),
    ]
    tiles = jax.ShapeDtypeStruct((Bp, Hp), F32)
    outs = [("h", tiles, tile)] + ([("c", tiles, tile)] if lstm else [])
    outs += [("y", jax.ShapeDtypeStruct((Bp, Hp), plan.out_dtype), tile)]
    if training:
        outs += [
            ("res", jax.ShapeDtypeStruct((Bp, R, Hp), F32), gates(R)),
            ("hin", tiles, tile),
        ]

    def body(carry, x):
        h, c = carry
        z, v, rs = x
        ins = [("h_row", h, full_row), ("h", h, tile), ("c", c, tile)]
        ins += [("z", z, gates(G)), ("valid", v, flag), ("resets", rs, flag)]
        out = _call(_stepwise_forward_kernel, plan, grid, ins + fixed, outs)
        per_step = (out["y"], out.get("res"), out.get("hin"))
        return (out["h"], out.get("c")), per_step

    h0 = a["h0"].astype(F32)
    c0 = a["c0"].astype(F32) if lstm else None
    (hT, cT), (ys, res, hin) = lax.scan(
        body, (h0, c0), (a["zs"], a["valid"], a["resets"])
    )
    cT = None if cT is None else cT.astype(plan.out_dtype)
    return ys, hT.astype(plan.out_dtype), cT, res, hin


def _stepwise_forward_kernel(plan, names, *refs):
    r, outs = _refs(names, refs)
    m, G = plan.math, plan.math.gates
    BB, BN, BK = plan.block("BB"), plan.block("BN"), plan.block("BK")
    valid = _flag(r, "valid", ..., (BB, BN))
    reset = _flag(r, "resets", ..., (BB, BN))
    reset_k = _flag(r, "resets", ..., (BB, BK))

    def k_step(kk, acc):  # the G gate columns of this tile, over a K chunk
        cols = pl.ds(pl.multiple_of(kk * BK, BK), BK)
        op = r["h_row"][:, cols]
        if reset_k is not None:
            op = jnp.where(reset_k, r["h0_row"][:, cols].astype(F32), op)
        if "mask_row" in r:
            op = op * r["mask_row"][:, cols].astype(F32)
        op = op.astype(plan.compute_dtype)
        return tuple(
            acc[k] + jnp.dot(op, r["w"][cols, k, :], preferred_element_type=F32)
            for k in range(G)
        )

    zero = jnp.zeros((BB, BN), F32)
    hw = lax.fori_loop(0, plan.Hp // BK, k_step, (zero,) * G)
    z = [r["z"][:, k, :].astype(F32) for k in range(G)]
    if "bias" in r:
        z = [zk + r["bias"][pl.ds(k, 1), :].astype(F32) for k, zk in enumerate(z)]
    bhn = r["bhn"][...].astype(F32) if "bhn" in r else None
    load = lambda name: r[name][...].astype(F32) if name in r else None
    carry = (r["h"][...], r["c"][...] if m.has_c else None)
    (h, c), y, res, h_in = common.forward_select(
        m, valid, reset, carry, (load("h0"), load("c0")), z, lambda _: list(hw), bhn
    )
    outs["h"][...] = h
    if m.has_c:
        outs["c"][...] = c
    outs["y"][...] = y.astype(outs["y"].dtype)
    if "res" in outs:
        for k, x in enumerate(res):
            outs["res"][:, k, :] = x
        outs["hin"][...] = h_in


def _stepwise_backward(plan, a):
    m, T, Bp, Hp, G = plan.math, plan.Tp, plan.Bp, plan.Hp, plan.math.gates
    BN, lstm = plan.block("BN"), plan.math.has_c
    tile, _, gates, flag, grid = _stepwise_specs(plan)
    ones = jnp.ones((T, Bp, 1), F32)
    valid = ones if a["valid"] is None else a["valid"]
    after = lambda f: jnp.concatenate([f[1:], jnp.zeros_like(f[:1])])  # step t + 1
    valid_next = after(valid)  # a virtual invalid step T passes dcarry_T through
    resets_next = None if a["resets"] is None else after(a["resets"])
    fixed = [
        ("w", a["w"], pl.BlockSpec((BN, G, Hp), lambda b, j: (j, 0, 0))),
        ("mask", a["mask"], tile),
    ]
    state = jax.ShapeDtypeStruct((Bp, Hp), F32)
    outs = [("da", jax.ShapeDtypeStruct((Bp, G, Hp), F32), gates(G))]
    outs += [] if lstm else [("dan", state, tile)]
    outs += [("pend", state, tile), ("dh", state, tile)]
    outs += [("dc", state, tile)] if lstm else []
    if a["resets"] is not None:
        outs += [("acc_h", state, tile)] + ([("acc_c", state, tile)] if lstm else [])
    full_gates = pl.BlockSpec((plan.block("BB"), G, Hp), lambda b, j: (b, 0, 0))

    def body(carry, x):
        dys, res, hin, v, v_next, r_next = x
        ins = [
            ("da_next", carry["da"], full_gates),
            ("pend", carry["pend"], tile),
            ("dh", carry["dh"], tile),
            ("dc", carry.get("dc"), tile),
            ("acc_h", carry.get("acc_h"), tile),
            ("acc_c", carry.get("acc_c"), tile),
            ("valid_next", v_next, flag),
            ("resets_next", r_next, flag),
            ("valid", None if a["valid"] is None else v, flag),
            ("dy", dys, tile),
            ("res", res, gates(m.residuals)),
            ("hin", hin, tile),
        ]
        out = _call(_stepwise_backward_kernel, plan, grid, ins + fixed, outs)
        return {k: v for k, v in out.items() if k != "dan"}, (out["da"], out.get("dan"))

    init = {
        "da": jnp.zeros((Bp, G, Hp), F32),
        "pend": jnp.zeros((Bp, Hp), F32),
        "dh": a["dhT"],
    }
    if lstm:
        init["dc"] = a["dcT"]
    if a["resets"] is not None:
        init["acc_h"] = jnp.zeros((Bp, Hp), F32)
        if lstm:
            init["acc_c"] = jnp.zeros((Bp, Hp), F32)
    hin = None if lstm else a["hin"]
    last, (da, dan) = lax.scan(
        body,
        init,
        (a["dys"], a["res"], hin, valid, valid_next, resets_next),
        reverse=True,
    )
    # Finish step 0: its dcarry_in, where the kernels left it pending.
    dop = jnp.dot(
        last["da"].reshape(Bp, G * Hp).astype(plan.compute_dtype),
        a["w"].reshape(Hp, G * Hp).T,
        preferred_element_type=F32,
    )
    dop = dop if a["mask"] is None else dop * a["mask"].astype(F32)
    g = (dop, last["pend"]) if lstm else (last["pend"] + dop, None)
    v0 = None if a["valid"] is None else a["valid"][0] > 0.5
    dcarry = (last["dh"], last.get("dc"))
    d0, _ = common.backward_select(v0, None, dcarry, g, None)
    if a["resets"] is not None:
        d0 = (d0[0] + last["acc_h"], d0[1] + last["acc_c"] if lstm else None)
    return da, dan, d0[0], d0[1]


def _stepwise_backward_kernel(plan, names, *refs):
    m, G, Hp = plan.math, plan.math.gates, plan.Hp
    BB, BN, BK = plan.block("BB"), plan.block("BN"), plan.block("BK")
    ins, outs = _refs(names, refs)

    # Finish step t + 1: dcarry_in for the rows of this tile, then carry it back.
    def k_step(kk, acc):
        cols = pl.ds(pl.multiple_of(kk * BK, BK), BK)
        for k in range(G):
            da = ins["da_next"][:, k, cols].astype(plan.compute_dtype)
            acc = acc + _dot_t(da, ins["w"][:, k, cols])
        return acc

    dop = lax.fori_loop(0, Hp // BK, k_step, jnp.zeros((BB, BN), F32))
    dop = dop if "mask" not in ins else dop * ins["mask"][...].astype(F32)
    pend = ins["pend"][...]
    g = (dop, pend) if m.has_c else (pend + dop, None)
    dcarry = (ins["dh"][...], ins["dc"][...] if m.has_c else None)
    acc = None
    if "acc_h" in ins:
        acc = (ins["acc_h"][...], ins["acc_c"][...] if m.has_c else None)
    dcarry, acc = common.backward_select(
        _flag(ins, "valid_next", ..., (BB, BN)),
        _flag(ins, "resets_next", ..., (BB, BN)),
        dcarry,
        g,
        acc,
    )
    # Step t's gate derivatives.
    valid = _flag(ins, "valid", ..., (BB, BN))
    dh_new, dc_new = common.step_cotangents(valid, ins["dy"][...].astype(F32), dcarry)
    res = [ins["res"][:, k, :] for k in range(m.residuals)]
    h_in = None if m.has_c else ins["hin"][...]
    da, dan, dh_dir, dc_in = m.backward(dh_new, dc_new, res, h_in)
    for k, x in enumerate(da):
        outs["da"][:, k, :] = x
    if dan is not None:
        outs["dan"][...] = dan
    outs["pend"][...] = dc_in if m.has_c else dh_dir
    outs["dh"][...] = dcarry[0]
    if m.has_c:
        outs["dc"][...] = dcarry[1]
    if acc is not None:
        outs["acc_h"][...] = acc[0]
        if m.has_c:
            outs["acc_c"][...] = acc[1]


GPU = common.Flavour(plan=plan, forward=forward, backward=backward)

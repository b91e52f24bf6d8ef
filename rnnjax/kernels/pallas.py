"""The Pallas recurrences (``impl="pallas"`` or ``impl=Pallas(...)``): which cells
they run, the entry point that pads the inputs for a flavour's kernels
(``pallas_gpu``, ``pallas_tpu``), and the ``custom_vjp`` around them (reverse-mode
derivatives only). The layout and the arithmetic on tiles are in
``_pallas_common``.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax.cells.gru import GRU, gru
from rnnjax.cells.lstm import LSTM, LSTMState, lstm
from rnnjax.kernels._pallas_common import F32, GRUMath, LSTMMath
from rnnjax.kernels.impl import Pallas
from rnnjax.kernels.pallas_gpu import GPU
from rnnjax.kernels.pallas_tpu import TPU
from rnnjax.kernels.scan import StepInputs, scan_recurrence

_COMPUTE_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))
_DEFAULT_CELLS = {LSTM: lstm, GRU: gru}
# Fields the kernels do not read (initialisation only) or check apart (dtype).
_FREE_FIELDS = ("dtype", "inits", "forget_bias", "chrono_init")

# ------------------------------------------------------------------ supported cells


def unsupported_reason(cell) -> str | None:
    """Why ``impl="pallas"`` cannot run ``cell`` (``None`` when it can): the
    kernels run ``rnnjax.lstm(H)`` and ``rnnjax.gru(H)`` as built with their
    default options (initialisers, ``forget_bias``, ``chrono_init`` and a float32
    or bfloat16 compute ``dtype`` may differ)."""
    factory = _DEFAULT_CELLS.get(type(cell))
    if factory is None:
        return "rnnjax.lstm(H) and rnnjax.gru(H) with their default options only"
    default = factory(cell.hidden_size)
    free = {f: getattr(cell, f) for f in _FREE_FIELDS if hasattr(default, f)}
    default = dataclasses.replace(default, **free)
    if cell != default:
        changed = [
            f.name
            for f in dataclasses.fields(cell)
            if getattr(cell, f.name) != getattr(default, f.name)
        ]
        name = factory.__name__
        return (
            f"rnnjax.{name}(H) with its default options only; options {changed} "
            f"differ from rnnjax.{name}({cell.hidden_size})"
        )
    if cell.dtype is not None and jnp.dtype(cell.dtype) not in _COMPUTE_DTYPES:
        return f"compute dtype float32 or bfloat16 only, got dtype={cell.dtype!r}"
    return None


def is_supported(cell) -> bool:
    """Whether ``impl="pallas"`` runs ``cell``."""
    return unsupported_reason(cell) is None


def check_supported(cell) -> None:
    """Raises ValueError naming ``impl`` when ``impl="pallas"`` cannot run
    ``cell``."""
    reason = unsupported_reason(cell)
    if reason is not None:
        raise ValueError(
            f"impl: 'pallas' does not run {type(cell).__name__} ({cell!r}): it runs "
            f"{reason} (use impl='fused', 'scan' or 'auto')"
        )


# ------------------------------------------------------------------ entry point


def pallas_recurrence(
    cell,
    params,
    carry0,
    inputs: StepInputs,
    *,
    unroll=1,
    options: Pallas | None = None,
    fallback=None,
):
    """The contract of `rnnjax.kernels`, run by the Pallas kernels of the
    flavour that ``options`` (default ``Pallas()``) resolve to
    (`Pallas.resolved`: TPU on a TPU backend, GPU otherwise).

    ``fallback`` (a recurrence) runs shapes the flavour cannot hold
    (``impl="auto"``); without it they raise ValueError.
    """
    check_supported(cell)
    options = (options or Pallas()).resolved()
    flavour = TPU if options.flavour == "tpu" else GPU
    zs, bias, valid, resets, rec_mask = inputs
    if zs.size == 0:  # no step or no sequence: nothing for a kernel to do
        return scan_recurrence(cell, params, carry0, inputs, unroll=unroll)
    math_ = LSTMMath() if type(cell) is LSTM else GRUMath()
    lstm_ = math_.has_c
    h0 = carry0.h if lstm_ else carry0
    T, batch, H, G = zs.shape[0], zs.shape[1:-1], cell.hidden_size, math_.gates
    if zs.shape[-1] != G * H:
        raise ValueError(f"zs: expected {G * H} features, got {zs.shape[-1]}")
    compute = jnp.dtype(cell.dtype if cell.dtype is not None else h0.dtype)
    plan = flavour.plan(
        kind="lstm" if lstm_ else "gru",
        T=T,
        B=math.prod(batch),
        H=H,
        compute_dtype=compute,
        out_dtype=jnp.dtype(h0.dtype),
        seq_dtypes=(jnp.dtype(zs.dtype), jnp.dtype(h0.dtype)),
        options=options,
        unroll=unroll,
    )
    if isinstance(plan, str):
        if fallback is not None:
            return fallback(cell, params, carry0, inputs, unroll=unroll)
        raise ValueError(f"impl: 'pallas' cannot run this shape: {plan}")
    pw = cell.pointwise_params(params)
    args = _pad_inputs(
        plan,
        G,
        cell.rec_weight(params),
        bias,
        pw.get("b_hn"),
        h0,
        carry0.c if lstm_ else None,
        zs,
        valid,
        resets,
        rec_mask,
    )
    hT, cT, ys = _core(plan, flavour, *args)
    unpad = lambda a: a[: plan.B, :H].reshape(*batch, H)
    ys = ys[:T, : plan.B, :H].reshape(T, *batch, H)
    carry = LSTMState(c=unpad(cT), h=unpad(hT)) if lstm_ else unpad(hT)
    return carry, ys


def _pad_to(x, shape):
    return jnp.pad(x, [(0, n - s) for s, n in zip(x.shape, shape, strict=True)])


def _pad_inputs(plan, G, w, bias, bhn, h0, c0, zs, valid, resets, mask):
    T, B, H, Tp, Bp, Hp = plan.T, plan.B, plan.H, plan.Tp, plan.Bp, plan.Hp
    state = lambda a: None if a is None else _pad_to(a.reshape(B, H), (Bp, Hp))

    def flags(f, fill):
        if f is None and not (fill and Tp > T):
            return None
        f = jnp.ones((T, B), F32) if f is None else f.reshape(T, B).astype(F32)
        return _pad_to(f, (Tp, Bp))[..., None]  # padded steps and rows: 0 (invalid)

    return (
        _pad_to(w.reshape(H, G, H), (Hp, G, Hp)),
        None if bias is None else _pad_to(bias.reshape(G, H), (G, Hp)),
        None if bhn is None else _pad_to(bhn.reshape(1, H), (1, Hp)),
        state(h0),
        state(c0),
        _pad_to(zs.reshape(T, B, G, H), (Tp, Bp, G, Hp)),
        flags(valid, True),
        flags(resets, False),
        state(mask),
    )


# -------------------------------------------------------------------- custom_vjp


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _core(plan, flavour, w, bias, bhn, h0, c0, zs, valid, resets, mask):
    ys, hT, cT, _, _ = flavour.forward(
        plan, _inputs(plan, w, bias, bhn, h0, c0, zs, valid, resets, mask), False
    )
    return hT, cT, ys


def _inputs(plan, w, bias, bhn, h0, c0, zs, valid, resets, mask):
    return dict(
        w=w.astype(plan.compute_dtype),
        bias=bias,
        bhn=bhn,
        h0=h0,
        c0=c0,
        zs=zs,
        valid=valid,
        resets=resets,
        mask=mask,
    )


def _core_fwd(plan, flavour, *primals):
    values = [jax.tree.map(lambda p: p.value, a) for a in primals]
    perturbed = [any(p.perturbed for p in jax.tree.leaves(a)) for a in primals]
    w, bias, bhn, h0, c0, zs, valid, resets, mask = values
    ys, hT, cT, res, hin = flavour.forward(plan, _inputs(plan, *values), True)
    # Residuals encode what bwd must form: None where no cotangent is wanted.
    wanted = dict(
        zip(
            ("w", "bias", "bhn", "h0", "c0", "zs", "v", "r", "mask"),
            perturbed,
            strict=True,
        )
    )
    keep = lambda name, x: x if wanted[name] else None
    saved = dict(
        w=w,
        bias_dtype=keep("bias", None if bias is None else jnp.zeros((), bias.dtype)),
        bhn_dtype=keep("bhn", None if bhn is None else jnp.zeros((), bhn.dtype)),
        want_w=keep("w", jnp.zeros((), w.dtype)),
        zs_dtype=keep("zs", jnp.zeros((), zs.dtype)),
        h0_dtype=jnp.zeros((), h0.dtype),
        c0_dtype=None if c0 is None else jnp.zeros((), c0.dtype),
        valid=valid,
        resets=resets,
        mask=mask,
        want_mask=keep("mask", None if mask is None else jnp.zeros((), mask.dtype)),
        res=res,
        hin=hin,
    )
    return (hT, cT, ys), saved


def _instantiate(ct, like):
    if ct is None or type(ct).__name__ == "SymbolicZero":
        return jnp.zeros(like.shape, like.dtype)
    return ct


def _core_bwd(plan, flavour, saved, cts):
    dhT, dcT, dys = cts
    s = saved
    w = s["w"]
    Tp, Bp, Hp, G = plan.Tp, plan.Bp, plan.Hp, plan.math.gates
    state_like = jax.ShapeDtypeStruct((Bp, Hp), plan.out_dtype)
    dhT = _instantiate(dhT, state_like).astype(F32)
    dcT = None if s["c0_dtype"] is None else _instantiate(dcT, state_like).astype(F32)
    dys = _instantiate(dys, jax.ShapeDtypeStruct((Tp, Bp, Hp), plan.out_dtype))
    wc = w.astype(plan.compute_dtype)
    da, dan, dh0, dc0 = flavour.backward(
        plan,
        dict(
            w=wc,
            res=s["res"],
            hin=s["hin"],
            dys=dys,
            dhT=dhT,
            dcT=dcT,
            valid=s["valid"],
            resets=s["resets"],
            mask=s["mask"],
        ),
    )
    # da (Tp, Bp, G, Hp) float32: the gradient w.r.t. z + hw (the GRU's third
    # block: w.r.t. hn = h W_hn + b_hn; its z_n gradient is dan).
    dz = da if dan is None else da.at[:, :, 2, :].set(dan)
    rows = lambda a: a.reshape(Tp * Bp, -1)
    dw = dbias = dbhn = dzs = dmask = None
    if s["want_w"] is not None:
        op = s["hin"] if s["mask"] is None else s["hin"] * s["mask"][None]
        dw = lax.dot_general(
            rows(op), rows(da), (((0,), (0,)), ((), ())), preferred_element_type=F32
        )
        dw = dw.reshape(Hp, G, Hp).astype(w.dtype)
    if s["bias_dtype"] is not None:
        dbias = jnp.sum(dz, axis=(0, 1)).astype(s["bias_dtype"].dtype)
    if s["bhn_dtype"] is not None:
        dbhn = jnp.sum(da[:, :, 2, :], axis=(0, 1))[None].astype(s["bhn_dtype"].dtype)
    if s["zs_dtype"] is not None:
        dzs = dz.astype(s["zs_dtype"].dtype)
    if s["want_mask"] is not None:  # d mask = sum_t h_in * (da_t W^T)
        dop = lax.dot_general(
            rows(da).astype(wc.dtype),
            wc.reshape(Hp, G * Hp),
            (((1,), (1,)), ((), ())),
            preferred_element_type=F32,
        )
        dmask = jnp.sum(s["hin"] * dop.reshape(Tp, Bp, Hp), axis=0)
        dmask = dmask.astype(s["want_mask"].dtype)
    dh0 = dh0.astype(s["h0_dtype"].dtype)
    dc0 = None if dc0 is None else dc0.astype(s["c0_dtype"].dtype)
    return dw, dbias, dbhn, dh0, dc0, dzs, None, None, dmask


_core.defvjp(_core_fwd, _core_bwd, symbolic_zeros=True)

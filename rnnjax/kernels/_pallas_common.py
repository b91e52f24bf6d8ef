"""What the Pallas GPU and TPU recurrences share: which cells they run, the options
that pick a flavour, the gate arithmetic on tiles, the padded layout and the
``custom_vjp`` around the kernels.

The split (``/work/shared/PALLAS.md``): the input projection stays outside (XLA);
the forward kernel walks time with ``W_h`` on chip, carrying ``h`` (and ``c``) in
float32, and writes ``ys`` plus, under differentiation, the residuals of every step
(the gate activations, ``c_in``, and the operand ``h_in``); the backward kernel
walks time in reverse carrying ``dh`` (and ``dc``) and writes the pre-activation
gradients ``da``. ``dW_h``, ``dz``, ``db`` (and ``d rec_mask``) are large products
or sums over all steps outside the kernels.

Layout handed to a flavour (all padded, batch flattened; legend ``G`` gates,
``R`` residual tiles per step, ``Hp``/``Bp``/``Tp`` padded sizes)::

    w (Hp, G, Hp)   bias (G, Hp)   bhn (1, Hp)        h0, c0, mask (Bp, Hp)
    zs (Tp, Bp, G, Hp)             valid, resets (Tp, Bp, 1) float32 0/1

Padded hidden units start at zero and stay zero (zero rows and columns of ``W``,
zero pre-activations: the LSTM's ``c`` and ``h`` and the GRU's ``h`` are fixed
points at zero); padded batch rows and time steps are cut off after the call
(padded steps are invalid, so the carry passes through them).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax.cells.gru import GRU
from rnnjax.cells.lstm import LSTM, LSTMState
from rnnjax.kernels.scan import scan_recurrence

F32 = jnp.float32
_COMPUTE_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))
FLAVOURS = ("gpu", "tpu")
GPU_DESIGNS = ("sequence", "stepwise")


# ------------------------------------------------------------------------ options


@dataclasses.dataclass(frozen=True)
class PallasOptions:
    """How ``impl="pallas"`` runs; ``None`` fields are chosen at trace time.

    Attributes:
      flavour: ``"gpu"`` (Triton) or ``"tpu"`` (Mosaic); default: ``"tpu"`` on a
        TPU backend, ``"gpu"`` elsewhere.
      interpret: run the kernels in Pallas' interpreter; default: on the CPU
        backend (slow; for tests), compiled on GPU and TPU.
      gpu_design: ``"sequence"`` (one program per batch tile walks all steps with
        ``W_h`` resident) or ``"stepwise"`` (one fused launch per step); default:
        ``"sequence"`` where ``W_h`` fits one program (see ``pallas_gpu``).
    """

    flavour: str | None = None
    interpret: bool | None = None
    gpu_design: str | None = None


_OPTIONS: contextvars.ContextVar[PallasOptions | None] = contextvars.ContextVar(
    "rnnjax_pallas_options", default=None
)


@contextlib.contextmanager
def pallas_options(flavour=None, interpret=None, gpu_design=None):
    """Within the block, ``impl="pallas"`` traces with these options (read at
    trace time; a function jitted earlier keeps what it was traced with).

    Example: the TPU kernels in the interpreter on a CPU host::

        with rnnjax.kernels.pallas_options(flavour="tpu", interpret=True):
            rnnjax.unroll(cell, params, xs, impl="pallas")
    """
    if flavour not in (None, *FLAVOURS):
        raise ValueError(
            f"flavour: expected one of {FLAVOURS} or None, got {flavour!r}"
        )
    if gpu_design not in (None, *GPU_DESIGNS):
        raise ValueError(
            f"gpu_design: expected one of {GPU_DESIGNS} or None, got {gpu_design!r}"
        )
    if interpret not in (None, True, False):
        raise ValueError(f"interpret: expected a bool or None, got {interpret!r}")
    token = _OPTIONS.set(PallasOptions(flavour, interpret, gpu_design))
    try:
        yield
    finally:
        _OPTIONS.reset(token)


def resolved_options() -> PallasOptions:
    """The options in force, with the defaults filled in from the backend."""
    opts, backend = _OPTIONS.get() or PallasOptions(), jax.default_backend()
    flavour = opts.flavour or ("tpu" if backend == "tpu" else "gpu")
    interpret = (
        backend not in ("gpu", "tpu") if opts.interpret is None else opts.interpret
    )
    return PallasOptions(flavour, interpret, opts.gpu_design)


# ------------------------------------------------------------------ supported cells


def unsupported_reason(cell) -> str | None:
    """Why ``impl="pallas"`` cannot run ``cell`` (``None`` when it can)."""
    if type(cell) is LSTM:
        defaults = dict(
            peephole=False,
            coupled=False,
            input_gate=True,
            forget_gate=True,
            output_gate=True,
            input_activation="tanh",
            output_activation="tanh",
            full_gate_recurrence=False,
            proj_size=None,
            layer_norm=False,
        )
        changed = [k for k, v in defaults.items() if getattr(cell, k) != v]
        if changed:
            return f"the plain LSTM only; options {changed} differ from the defaults"
    elif type(cell) is GRU:
        if not cell.reset_after:
            return "the GRU with reset_after=True only"
    else:
        return "rnnjax.lstm(H) (default options) and rnnjax.gru(H) only"
    if cell.dtype is not None and jnp.dtype(cell.dtype) not in _COMPUTE_DTYPES:
        return f"compute dtype float32 or bfloat16 only, got dtype={cell.dtype!r}"
    return None


def is_supported(cell) -> bool:
    return unsupported_reason(cell) is None


def check_supported(cell) -> None:
    reason = unsupported_reason(cell)
    if reason is not None:
        raise ValueError(
            f"impl: 'pallas' does not run {type(cell).__name__} ({cell!r}): it runs "
            f"{reason} (use impl='fused', 'scan' or 'auto')"
        )


# ------------------------------------------------------------- gate arithmetic
#
# On tiles: lists of (BB, N) float32 arrays, one per gate. Shared by every kernel.


def _sigmoid(x):
    return 1.0 / (1.0 + jnp.exp(-x))  # lowers the same everywhere (Triton, Mosaic)


@dataclasses.dataclass(frozen=True)
class LSTMMath:
    """Gates ``i, f, g, o``; residuals ``[i, f, g, o, c_in]``."""

    gates: int = 4
    residuals: int = 5
    has_c: bool = True

    def forward(self, z, hw, bhn, h_in, c_in):
        del bhn, h_in
        i, f, o = (_sigmoid(z[k] + hw[k]) for k in (0, 1, 3))
        g = jnp.tanh(z[2] + hw[2])
        c = f * c_in + i * g
        return (o * jnp.tanh(c), c), [i, f, g, o, c_in]

    def backward(self, dh, dc, res, h_in):
        """``(da (per gate, w.r.t. z + hw), dan None, dh_in direct None, dc_in)``."""
        del h_in
        i, f, g, o, c_in = res
        tc = jnp.tanh(f * c_in + i * g)
        dc = dc + dh * o * (1.0 - tc * tc)
        da = [
            dc * g * i * (1.0 - i),
            dc * c_in * f * (1.0 - f),
            dc * i * (1.0 - g * g),
            dh * tc * o * (1.0 - o),
        ]
        return da, None, None, dc * f


@dataclasses.dataclass(frozen=True)
class GRUMath:
    """Gates ``r, z, n`` (reset after the product); residuals ``[r, u, n, hn]``
    with ``hn = h W_hn + b_hn``."""

    gates: int = 3
    residuals: int = 4
    has_c: bool = False

    def forward(self, z, hw, bhn, h_in, c_in):
        del c_in
        r = _sigmoid(z[0] + hw[0])
        u = _sigmoid(z[1] + hw[1])
        hn = hw[2] if bhn is None else hw[2] + bhn
        n = jnp.tanh(z[2] + r * hn)
        return ((1.0 - u) * n + u * h_in, None), [r, u, n, hn]

    def backward(self, dh, dc, res, h_in):
        """``(da w.r.t. hw (r, z, hn), dan w.r.t. z_n, dh_in direct, None)``; the
        ``z`` gradient is ``[da_r, da_z, dan]``."""
        del dc
        r, u, n, hn = res
        dan = dh * (1.0 - u) * (1.0 - n * n)
        da = [dan * hn * r * (1.0 - r), dh * (h_in - n) * u * (1.0 - u), dan * r]
        return da, dan, dh * u, None


def cell_math(cell):
    return LSTMMath() if type(cell) is LSTM else GRUMath()


# ------------------------------------------------------- masked steps on tiles


def where0(flag, x):
    """``x`` where ``flag`` (or everywhere without one), else zero."""
    return x if flag is None else jnp.where(flag, x, jnp.zeros_like(x))


def keep_new(valid, new, old):
    """``new`` where ``valid`` (everywhere without a flag), else ``old``."""
    return new if valid is None or new is None else jnp.where(valid, new, old)


def reset_to(reset, start, carry):
    """``start`` where ``reset``, else ``carry`` (``carry`` without a flag)."""
    return carry if reset is None or carry is None else jnp.where(reset, start, carry)


def forward_select(math_, valid, reset, carry, carry0, z, hw_of, bhn):
    """One masked forward step on tiles (see ``scan.masked_step``).

    ``carry = (h, c)`` (``c`` None for the GRU), ``carry0`` likewise, ``hw_of(h_in)``
    the recurrent product of the step; returns ``(carry, y, residuals, h_in)``.
    """
    h, c = carry
    h_in, c_in = reset_to(reset, carry0[0], h), reset_to(reset, carry0[1], c)
    (h_new, c_new), res = math_.forward(z, hw_of(h_in), bhn, h_in, c_in)
    new = (keep_new(valid, h_new, h), keep_new(valid, c_new, c))
    return new, where0(valid, h_new), res, h_in


def backward_select(valid, reset, dcarry, g, acc):
    """Carries the gradient from after step ``t`` to before it.

    ``dcarry`` is the gradient w.r.t. the carry after the step, ``g`` the one
    w.r.t. the step's ``carry_in``; a reset sends ``g`` to ``carry0`` (``acc``),
    an invalid step passes ``dcarry`` through. Returns ``(dcarry_prev, acc)``.
    """
    if reset is not None:
        acc = jax.tree.map(lambda a, x: a + where0(reset, x), acc, g)
        g = jax.tree.map(lambda x: jnp.where(reset, jnp.zeros_like(x), x), g)
    if valid is not None:
        g = jax.tree.map(
            lambda x, d: x + jnp.where(valid, jnp.zeros_like(d), d), g, dcarry
        )
    return g, acc


def step_cotangents(valid, dy, dcarry):
    """``(dh_new, dc_new)``: the gradients w.r.t. the step's new carry (zero on an
    invalid step, whose outputs are discarded)."""
    dh, dc = dcarry
    return where0(valid, dy + dh), (None if dc is None else where0(valid, dc))


# ------------------------------------------------------------------ the layout


def step_operands(a, seq, row):
    """The operand entries every whole-sequence kernel reads besides its own:
    ``valid`` and ``resets`` blocked like the sequence, ``mask`` like a row."""
    return [
        ("valid", a["valid"], seq(1)),
        ("resets", a["resets"], seq(1)),
        ("mask", a["mask"], row),
    ]


def state_outputs(math_, shape, dtype, row, names):
    """Output entries of a state ``(Bp, Hp)``: ``names[0]`` (of h), and
    ``names[1]`` (of c) for cells that carry one."""
    state = jax.ShapeDtypeStruct(shape, dtype)
    return [(names[0], state, row)] + ([(names[1], state, row)] if math_.has_c else [])


def round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@dataclasses.dataclass(frozen=True)
class Plan:
    """Static configuration of one call (hashable: it keys the ``custom_vjp``).

    ``flavour``/``design`` pick the kernels; ``blocks`` holds the flavour's tile
    sizes as ``(name, value)`` pairs.
    """

    kind: str  # "lstm" | "gru"
    flavour: str
    design: str
    interpret: bool
    T: int
    B: int
    H: int
    Tp: int
    Bp: int
    Hp: int
    compute_dtype: Any
    out_dtype: Any
    unroll: int = 1
    blocks: tuple = ()

    @property
    def math(self):
        return LSTMMath() if self.kind == "lstm" else GRUMath()

    def block(self, name):
        return dict(self.blocks)[name]


@dataclasses.dataclass(frozen=True)
class Flavour:
    """A flavour's pieces: ``plan(...) -> Plan`` (or a reason string when the shape
    does not fit), ``forward(plan, arrays, training)`` and ``backward(plan, ...)``
    (see :func:`recurrence`)."""

    plan: Callable
    forward: Callable
    backward: Callable


# ------------------------------------------------------------------ entry point


def recurrence(
    flavour: Flavour,
    cell,
    params,
    carry0,
    zs,
    valid=None,
    resets=None,
    rec_mask=None,
    unroll=1,
    bias=None,
    *,
    options: PallasOptions,
    fallback=None,
):
    """The contract of ``scan.scan_recurrence``, run by ``flavour``'s kernels.

    ``fallback`` (a recurrence function) runs shapes the flavour cannot hold
    (``impl="auto"``); without it they raise ValueError.
    """
    check_supported(cell)
    if zs.size == 0:  # no step or no sequence: nothing for a kernel to do
        return scan_recurrence(
            cell, params, carry0, zs, valid, resets, rec_mask, unroll, bias
        )
    math_ = cell_math(cell)
    lstm = math_.has_c
    h0 = carry0.h if lstm else carry0
    T, batch, H, G = zs.shape[0], zs.shape[1:-1], cell.hidden_size, math_.gates
    if zs.shape[-1] != G * H:
        raise ValueError(f"zs: expected {G * H} features, got {zs.shape[-1]}")
    compute = jnp.dtype(cell.dtype if cell.dtype is not None else h0.dtype)
    plan = flavour.plan(
        kind="lstm" if lstm else "gru",
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
            return fallback(
                cell, params, carry0, zs, valid, resets, rec_mask, unroll, bias
            )
        raise ValueError(f"impl: 'pallas' cannot run this shape: {plan}")
    pw = cell.pointwise_params(params)
    args = _pad_inputs(
        plan,
        G,
        cell.rec_weight(params),
        bias,
        pw.get("b_hn"),
        h0,
        carry0.c if lstm else None,
        zs,
        valid,
        resets,
        rec_mask,
    )
    hT, cT, ys = _core(plan, flavour, *args)
    unpad = lambda a: a[: plan.B, :H].reshape(*batch, H)
    ys = ys[:T, : plan.B, :H].reshape(T, *batch, H)
    carry = LSTMState(c=unpad(cT), h=unpad(hT)) if lstm else unpad(hT)
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

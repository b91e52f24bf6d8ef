"""The fused recurrence for cells of the form ``hw_t = rec_input(carry) @ W``
followed by an elementwise ``update`` (LSTM, GRU with reset after, Elman, sLSTM).
Every product with ``W`` (or ``dW``) is the cell's ``rec_product``, a matrix
product unless the cell says otherwise (sLSTM: one block per head).

The forward pass is one ``lax.scan`` of one matrix product and one elementwise block
per step. The derivative is written by hand as a ``custom_jvp`` whose tangent is a
*linear* scan with no nonlinear work left in it:

- under differentiation the forward scan also linearises each step where it stands
  (``_linear.linearize``: ``jax.linearize`` with product chains folded, so the LSTM
  keeps 6 coefficient arrays per step, the GRU 5) and stacks the coefficients;
- the terms that do not depend on the recurrence are formed for all steps at once:
  the weight term ``op_t @ dW`` as ONE ``(T*B, K) x (K, N)`` product; for additive
  cells (``update`` reads ``z + hw`` only: LSTM without layer norm, Elman) the input
  tangent ``dz_t`` joins it, so one tangent ``d(z + hw)`` serves both;
- the tangent scan carries only ``dcarry``: per step one ``dop @ W`` and the linear
  elementwise map with its stored coefficients.

Reverse mode is JAX's transpose of that linear rule: a reverse scan of the same
shape (the ``dhw_t @ W^T`` chain and the transposed map, multiplications and adds
only), then ``dW = ops^T @ dHW`` as one large product over all time steps (as cuDNN
does), and ``dzs`` handed to the input projection's own transpose. No forward step
is computed twice, and nothing nonlinear runs in the reverse loop. Because the rule
is a JVP, forward mode (``jax.jvp``), reverse mode, ``vmap`` and ``checkpoint`` all
work in any order. Symbolic zeros skip the terms of inputs that are not
differentiated. ``scan.scan_recurrence`` is the reference it must equal.

XLA:CPU detail that shapes the forward scan: a wide per-step slice ``zs[t]`` fused
into the transcendental gate arithmetic compiles to slow code (several times slower
for the LSTM step; ``benchmarks/RESULTS.md``). The forward scan therefore reads
step ``t + 1``'s inputs into the loop carry one step ahead (software pipelining),
so the gate arithmetic reads plain buffers. The tangent scan stays a plain scan:
its per-step inputs are residuals that JAX's partial evaluation then hands to the
transposed scan as they are.

``projected_recurrence`` takes the input projection inside as well, as a second
``custom_jvp``: computing values only, it projects ``C`` steps at a time in a scan
over chunks (on the CPU a large ``(T, B, Z)`` buffer is mapped and faulted in afresh
on every call); its JVP projects all steps at once and is the rule above.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from rnnjax.cells.base import (
    event_ndim,
    expand,
    is_fusable,
    mask_operand,
    project_split,
)
from rnnjax.kernels import _linear
from rnnjax.kernels._chunks import over_chunks
from rnnjax.kernels.scan import (
    StepInputs,
    broadcast_mask,
    scan_recurrence,
    tree_where,
)


def fused_recurrence(cell, params, carry0, inputs: StepInputs, *, unroll=1):
    """The contract of `rnnjax.kernels`, for cells of the fused form."""
    if not is_fusable(cell):
        raise ValueError(
            f"impl: 'fused' needs a cell of the fused form; {type(cell).__name__} "
            "with these options is not (use impl='scan' or 'auto')"
        )
    if inputs.zs.shape[0] == 0:  # nothing to fuse; the reference handles no steps
        return scan_recurrence(cell, params, carry0, inputs, unroll=unroll)
    w = cell.rec_weight(params)
    pw = cell.pointwise_params(params)
    return _fused(cell, unroll, pw, w, carry0, inputs)


# ------------------------------------------------------------------------ pieces


def _cast_w(cell, w):
    return w if cell.dtype is None else w.astype(cell.dtype)


def _select_valid(v, new, old, y):
    """Padding: the carry is left unchanged and the output is zero."""
    if v is None:
        return new, y
    y = jnp.where(broadcast_mask(v, y), y, jnp.zeros((), y.dtype))
    return tree_where(v, new, old), y


def _pipelined_scan(body, init, seq, unroll):
    """``lax.scan(body, init, seq)`` that hands ``body`` step ``t``'s slice of ``seq``
    from the loop carry, read one step ahead (see the module docstring)."""
    num_steps = jax.tree.leaves(seq)[0].shape[0]
    first = jax.tree.map(lambda a: a[0], seq)

    def step(state, t):
        carry, cur = state
        nxt = jax.tree.map(
            lambda a: lax.dynamic_index_in_dim(
                a, jnp.minimum(t + 1, num_steps - 1), keepdims=False
            ),
            seq,
        )
        carry, out = body(carry, cur)
        return (carry, nxt), out

    (carry, _), outs = lax.scan(
        step, (init, first), jnp.arange(num_steps, dtype=jnp.int32), unroll=unroll
    )
    return carry, outs


def _forward(cell, unroll, pw, w, carry0, inputs, lin=None, start=None):
    """Forward scan over ``inputs`` (a `StepInputs`), from ``start`` when
    given (a chunk's incoming carry; resets still return to ``carry0``).

    With ``lin`` (flags ``(additive, wrt_z, wrt_pw)``), each step also linearises
    itself where it stands and returns, stacked over time, what the tangent scan
    needs: the linear map ``(dcarry_in, dhw[, dz][, dpw]) -> (dnew, dy)`` (``dhw``
    stands for ``d(z + hw)`` when additive), the linear map ``dcarry_in -> dop``
    and the unmasked operand ``op_t`` (for the weight terms). The gate activations
    and their derivatives are computed once, here.
    """
    zs, bias, valid, resets, rec_mask = inputs
    wc = _cast_w(cell, w)

    def body(carry, step):
        z, v, r = step
        z = z if bias is None else z + expand(bias, z.ndim)  # fused into the gates
        carry_in = carry if r is None else tree_where(r, carry0, carry)
        op = cell.rec_input(carry_in)
        hw = cell.rec_product(mask_operand(op, rec_mask), wc)
        if lin is None:
            new, y = cell.update(pw, carry_in, z, hw)
            return _select_valid(v, new, carry, y)
        (new, y), step_lin = _linearize_update(cell, lin, pw, carry_in, z, hw)
        _, op_lin = _linear.linearize(cell.rec_input, carry_in)
        new, y = _select_valid(v, new, carry, y)
        return new, (y, step_lin, op_lin, op)

    start = carry0 if start is None else start
    carry_t, out = _pipelined_scan(body, start, (zs, valid, resets), unroll)
    if lin is None:
        return carry_t, out
    return (carry_t, *out)


def _linearize_update(cell, lin, pw, carry_in, z, hw):
    """``jax.linearize`` of one elementwise step w.r.t. the carry, ``hw`` and, as
    ``lin = (additive, wrt_z, wrt_pw)`` asks, ``z`` and the pointwise parameters.

    For an additive cell (``update`` reads ``z`` and ``hw`` only as ``z + hw``) the
    map takes ``d(z + hw)`` in place of ``dhw`` and ``dz``.
    """
    additive, wrt_z, wrt_pw = lin
    if additive:  # linearise w.r.t. a = z + hw; update(pw, c, a, 0) == update(...)
        zero = jnp.zeros_like(hw)

        def f(c, a, *rest):
            return cell.update(rest[0] if wrt_pw else pw, c, a, zero)

        return _linear.linearize(f, carry_in, z + hw, *((pw,) if wrt_pw else ()))

    def g(c, h, *rest):
        rest = list(rest)
        zz = rest.pop(0) if wrt_z else z
        pp = rest.pop(0) if wrt_pw else pw
        return cell.update(pp, c, zz, h)

    args = (carry_in, hw) + ((z,) if wrt_z else ()) + ((pw,) if wrt_pw else ())
    return _linear.linearize(g, *args)


def _is_additive(cell, pw, carry, z, hw) -> bool:
    """Whether ``cell.update`` reads ``z`` and ``hw`` only through one ``z + hw``
    (LSTM without layer norm, Elman): then one tangent ``d(z + hw)`` serves both."""
    if z.shape != hw.shape or z.dtype != hw.dtype:
        return False
    closed = jax.make_jaxpr(lambda zz, hh: cell.update(pw, carry, zz, hh))(z, hw)
    jaxpr = closed.jaxpr
    zv, hv = jaxpr.invars
    users = [e for e in jaxpr.eqns if any(v is zv or v is hv for v in e.invars)]
    return (
        len(users) == 1
        and users[0].primitive.name == "add"
        and {id(v) for v in users[0].invars} == {id(zv), id(hv)}
        and not any(v is zv or v is hv for v in jaxpr.outvars)
    )


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _fused(cell, unroll, pw, w, carry0, inputs):
    return _forward(cell, unroll, pw, w, carry0, inputs)


# ------------------------------------------------------------------------ the JVP


def _nonzero(tangent) -> bool:
    """Whether any leaf of a tangent pytree is not a symbolic zero."""
    leaves = jax.tree.leaves(tangent, is_leaf=lambda x: isinstance(x, SymbolicZero))
    return any(not isinstance(t, SymbolicZero) for t in leaves)


def _instantiate(tangent, primal):
    """Symbolic zeros replaced by arrays of zeros (leaf by leaf)."""
    return jax.tree.map(
        lambda t, p: jnp.zeros_like(p) if isinstance(t, SymbolicZero) else t,
        tangent,
        primal,
        is_leaf=lambda x: isinstance(x, SymbolicZero),
    )


def _fused_jvp(cell, unroll, primals, tangents):
    pw, w, carry0, inputs = primals
    dpw, dw, dcarry0, dinputs = tangents
    zs, bias, valid, resets, rec_mask = inputs
    dzs, dbias, dmask = dinputs.zs, dinputs.bias, dinputs.rec_mask
    if bias is not None and _nonzero(dbias):  # the step sees z + bias
        dzs = _instantiate(dzs, zs) + jnp.broadcast_to(expand(dbias, zs.ndim), zs.shape)
    wrt_z, wrt_pw = _nonzero(dzs), _nonzero(dpw)
    wc = _cast_w(cell, w)
    hw_shape = jax.eval_shape(
        lambda c: cell.rec_product(mask_operand(cell.rec_input(c), rec_mask), wc),
        carry0,
    )
    additive = _is_additive(
        cell, pw, carry0, zs[0], jnp.zeros(hw_shape.shape, hw_shape.dtype)
    )
    carry_t, ys, step_lin, op_lin, ops = _forward(
        cell, unroll, pw, w, carry0, inputs, (additive, wrt_z, wrt_pw)
    )

    # The weight terms of every step at once: (T*B, K) @ (K, N), one product each.
    mask = None if rec_mask is None else rec_mask[None]  # explicit time axis
    hw_terms = []
    if _nonzero(dw):
        hw_terms.append(cell.rec_product(mask_operand(ops, mask), dw))
    if rec_mask is not None and _nonzero(dmask):
        dm = jnp.broadcast_to(dmask[None], ops.shape).astype(ops.dtype)
        hw_terms.append(cell.rec_product(ops * dm, wc))
    if additive and wrt_z:  # the input term joins the weight terms: d(z + hw)
        hw_terms.append(dzs)
        wrt_z = False
    u = sum(hw_terms[1:], hw_terms[0]) if hw_terms else None
    dcarry0 = _instantiate(dcarry0, carry0)
    extra = (_instantiate(dpw, pw),) if wrt_pw else ()

    def tangent_step(dcarry, step):
        step_lin_t, op_lin_t, u_t, dz_t, v, r = step
        dcarry_in = dcarry if r is None else tree_where(r, dcarry0, dcarry)
        dhw = cell.rec_product(mask_operand(op_lin_t(dcarry_in), rec_mask), wc)
        if u_t is not None:
            dhw = dhw + u_t
        dz = (dz_t,) if wrt_z else ()
        dnew, dy = step_lin_t(dcarry_in, dhw, *dz, *extra)
        return _select_valid(v, dnew, dcarry, dy)

    # A plain scan (not pipelined): its per-step inputs are known residuals, which
    # JAX's partial evaluation hands to the transposed scan as they are.
    dzs = dzs if wrt_z else None
    dcarry_t, dys = lax.scan(
        tangent_step,
        dcarry0,
        (step_lin, op_lin, u, dzs, valid, resets),
        unroll=unroll,
    )
    return (carry_t, ys), (dcarry_t, dys)


_fused.defjvp(_fused_jvp, symbolic_zeros=True)


# ------------------------------------------- the input projection inside the kernel

# A forward-only call on the CPU projects the inputs chunk by chunk when the whole
# projection would be large: XLA:CPU allocates its temporaries afresh on each call,
# and glibc maps a block above its mmap threshold (at most 32 MiB) anew every time,
# faulting in each page; projecting chunk by chunk makes large forward calls faster,
# while a 16 MiB projection gains nothing (benchmarks/RESULTS.md). Chunks of about
# 8 MiB stay below the threshold.
_CHUNK_FROM_BYTES = 32 << 20
_CHUNK_BYTES = 8 << 20


def projection_chunk(cell, params, xs) -> int | None:
    """Steps per chunk for `projected_recurrence` on time-major
    ``xs (T, *B, I)``, or ``None`` where projecting all steps at once is as fast
    (projections under 32 MiB; cells not of the fused form). The caller uses it
    on the CPU only (``lax.platform_dependent``: the platform lowered for)."""
    if not is_fusable(cell):
        return None
    num_steps = xs.shape[0]
    one_step = jax.ShapeDtypeStruct((1, *xs.shape[1:]), xs.dtype)
    step = jax.eval_shape(lambda p, x: project_split(cell, p, x)[0], params, one_step)
    step_bytes = step.size * step.dtype.itemsize
    if step_bytes == 0 or num_steps * step_bytes < _CHUNK_FROM_BYTES:
        return None
    target = max(1, _CHUNK_BYTES // step_bytes)
    # Prefer a divisor of T (no padded steps) within a factor 2 of the target.
    for size in range(target, (target + 1) // 2 - 1, -1):
        if num_steps % size == 0:
            return size
    return target


def projected_recurrence(
    cell, params, carry0, xs, *, valid=None, resets=None, rec_mask=None, unroll=1, chunk
):
    """``fused_recurrence`` of the input projection of time-major ``xs (T, *B, I)``
    (``valid``, ``resets``, ``rec_mask`` as in `StepInputs`).

    Computing the values only, the projection runs ``chunk`` steps at a time inside
    a scan over chunks, so the ``(T, *B, Z)`` projection is never held whole. Under
    differentiation (``jax.jvp``, ``jax.grad``, ...) the rule projects all steps at
    once and is the fused kernel's own JVP: derivatives, and the speed of reverse
    mode, are those of ``project_split`` followed by ``fused_recurrence``.

    Returns ``(carry_T, ys (T, *B, Y))``.
    """
    return _projected(cell, unroll, chunk, params, carry0, xs, valid, resets, rec_mask)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def _projected(cell, unroll, chunk, params, carry0, xs, valid, resets, rec_mask):
    pw, w = cell.pointwise_params(params), cell.rec_weight(params)

    def chunk_fn(carry, chunk_xs):
        x, v, r = chunk_xs
        zs, bias = project_split(cell, params, x)
        chunk_inputs = StepInputs(zs, bias, v, r, rec_mask)
        return _forward(cell, unroll, pw, w, carry0, chunk_inputs, start=carry)

    return over_chunks(chunk_fn, carry0, xs, valid, resets, chunk, event_ndim(cell))


def _projected_jvp(cell, unroll, chunk, primals, tangents):
    params, carry0, xs, valid, resets, rec_mask = primals
    dparams, dcarry0, dxs, _, _, dmask = tangents
    (zs, bias), (dzs, dbias) = _partial_jvp(
        lambda p, x: project_split(cell, p, x), (params, xs), (dparams, dxs)
    )
    if not _nonzero(dparams):  # the bias depends on the parameters alone
        dbias = _symbolic_zeros(bias)
    (pw, w), (dpw, dw) = _partial_jvp(
        lambda p: (cell.pointwise_params(p), cell.rec_weight(p)), (params,), (dparams,)
    )
    primals = (pw, w, carry0, StepInputs(zs, bias, valid, resets, rec_mask))
    tangents = (dpw, dw, dcarry0, StepInputs(dzs, dbias, None, None, dmask))
    return _fused_jvp(cell, unroll, primals, tangents)


_projected.defjvp(_projected_jvp, symbolic_zeros=True)


def _partial_jvp(fn, primals, tangents):
    """``jax.jvp(fn, primals, tangents)`` w.r.t. only the arguments whose tangent
    is not entirely a symbolic zero (their zero leaves made arrays); symbolic zeros
    out when none is."""
    live = [i for i, t in enumerate(tangents) if _nonzero(t)]
    if not live:
        out = fn(*primals)
        return out, _symbolic_zeros(out)

    def of_live(*live_args):
        args = list(primals)
        for i, a in zip(live, live_args, strict=True):
            args[i] = a
        return fn(*args)

    return jax.jvp(
        of_live,
        tuple(primals[i] for i in live),
        tuple(_instantiate(tangents[i], primals[i]) for i in live),
    )


def _symbolic_zeros(tree):
    return jax.tree.map(SymbolicZero.from_primal_value, tree)

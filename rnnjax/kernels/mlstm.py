"""The mLSTM core over a sequence: the recurrence and its parallel and chunkwise
forms (Beck et al. 2024), plain JAX, each equal to the recurrence.

Shapes, batch-major with heads before time (as attention): ``q, k, v
(*B, NH, T, DH)`` (``k`` already scaled by ``1/sqrt(DH)``), the gates'
pre-activations ``i_pre, f_pre (*B, NH, T)``, ``valid (*B, T)`` booleans or
``None`` (right padding: an invalid step leaves the state unchanged, ``m``
included, and outputs zero), ``carry`` an `rnnjax.MLSTMState` ``(C (*B, NH, DH,
DH), n (*B, NH, DH), m (*B, NH))``; every form returns ``(carry_T, h (*B, NH,
T, DH))``.

- `mlstm_scan`: the recurrence, a ``lax.scan`` of `rnnjax.cells.mlstm.mlstm_step`
  (the reference; the equations are in `rnnjax.cells.mlstm`).
- `mlstm_parallel`: the quadratic form. With ``F_t`` the sum of ``log f`` over
  steps ``1..t``, step ``j`` weighs into ``h_t`` by
  ``D_tj = exp(F_t - F_j + i_j - m_t)`` (``j <= t``) and the initial state by
  ``exp(F_t + m_0 - m_t)``, where ``m_t`` is the largest of these exponents:
  exactly the recurrence's stabiliser ``m_t``, unrolled. Then
  ``h_t = (sum_j D_tj (q_t.k_j) v_j + w_t q_t^T C_0) / (max(|sum_j D_tj (q_t.k_j)
  + w_t q_t.n_0|, exp(-m_t)) + eps)``. Memory ``O(T^2)`` per head. (The ``xlstm``
  package's ``parallel_stabilized_simple`` without an initial state: its ``m_t``
  omits the term ``F_t + m_0``, so it differs from its own recurrent step where
  that term is the largest.) ``F`` is a float32 sum over the whole sequence:
  over thousands of steps ``F_t - F_j`` loses digits, which the chunkwise form
  avoids.
- `mlstm_chunkwise`: chunks of ``chunk_size`` steps; a ``lax.scan`` over chunks
  carries the state from one chunk boundary to the next (the parallel form's end
  state of a chunk), and every chunk's outputs are the parallel form inside it,
  started from its boundary state, all chunks at once. Cumulative sums of
  ``log f`` stay within a chunk. Memory ``O(T * chunk_size)`` and ``O(T/chunk)``
  states. ``T`` need not be a multiple: the last chunk is padded with invalid
  steps. With ``chunk_size >= T`` it is the parallel form.
- `mlstm_sequence`: one of them by name (``impl``).

Invalid steps enter the parallel forms as ``log f = 0`` and ``i = -inf`` (the
identity step); their ``q, k, v`` and gates are zeroed first, so NaN or inf
there reaches no output and no derivative. Every form equals the recurrence in
values, final carry and derivatives to float32 rounding
(``tests/kernels/test_mlstm_forms.py``).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from rnnjax.cells.base import check_positive_int
from rnnjax.cells.mlstm import MLSTMState, log_forget, mlstm_step
from rnnjax.cells.slstm import FORGET_GATES
from rnnjax.kernels.scan import broadcast_mask, tree_where

FORMS = ("scan", "parallel", "chunkwise", "auto")


# ---------------------------------------------------------------------- checks


def check_core_args(q, k, v, i_pre, f_pre, carry, valid, forget_gate, eps):
    """Raises ValueError/TypeError naming the argument when the core's arguments
    do not fit together (shapes in the module docstring)."""
    if jnp.ndim(q) < 3:
        raise ValueError(f"q: expected rank >= 3 (*B, NH, T, DH), got {jnp.shape(q)}")
    shape = tuple(jnp.shape(q))
    batch, (nh, num_steps, dh) = shape[:-3], shape[-3:]
    for name, x in (("k", k), ("v", v)):
        if tuple(jnp.shape(x)) != shape:
            raise ValueError(f"{name}: expected q's shape {shape}, got {jnp.shape(x)}")
    for name, x in (("i_pre", i_pre), ("f_pre", f_pre)):
        if tuple(jnp.shape(x)) != shape[:-1]:
            raise ValueError(
                f"{name}: expected {shape[:-1]} (*B, NH, T), got {jnp.shape(x)}"
            )
    for name, x in (("q", q), ("k", k), ("v", v), ("i_pre", i_pre), ("f_pre", f_pre)):
        if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
            raise TypeError(f"{name}: expected a floating dtype, got {x.dtype}")
    if not isinstance(carry, MLSTMState):
        raise TypeError(
            f"carry: expected an rnnjax.MLSTMState(C, n, m), got {type(carry).__name__}"
        )
    want = MLSTMState((*batch, nh, dh, dh), (*batch, nh, dh), (*batch, nh))
    got = MLSTMState(*(tuple(jnp.shape(x)) for x in carry))
    if got != want:
        raise ValueError(f"carry: expected shapes {want}, got {got}")
    if valid is not None:
        if tuple(jnp.shape(valid)) != (*batch, num_steps):
            raise ValueError(
                f"valid: expected {(*batch, num_steps)} (*B, T), got {jnp.shape(valid)}"
            )
        if jnp.result_type(valid) != jnp.bool_:
            raise TypeError(f"valid: expected booleans, got {jnp.result_type(valid)}")
    if forget_gate not in FORGET_GATES:
        raise ValueError(
            f"forget_gate: expected one of {FORGET_GATES}, got {forget_gate!r}"
        )
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps >= 0:
        raise ValueError(f"eps: expected a float >= 0, got {eps!r}")


def _masked(q, k, v, i_pre, f_pre, valid):
    """Zeros every input of the invalid steps (so no NaN there reaches a
    derivative); ``valid (*B, T)`` or ``None``."""
    if valid is None:
        return q, k, v, i_pre, f_pre
    gate_mask = valid[..., None, :]  # (*B, 1, T)
    zero = lambda x, m: jnp.where(m, x, jnp.zeros((), x.dtype))
    q, k, v = (zero(x, gate_mask[..., None]) for x in (q, k, v))
    return q, k, v, zero(i_pre, gate_mask), zero(f_pre, gate_mask)


def _gates(i_pre, f_pre, valid, forget_gate):
    """``(i, log f)`` for the parallel forms, with the identity step (``i = -inf``,
    ``log f = 0``) where ``valid`` is false."""
    log_f = log_forget(f_pre, forget_gate)
    if valid is None:
        return i_pre, log_f
    mask = valid[..., None, :]
    i_pre = jnp.where(mask, i_pre, jnp.full((), -jnp.inf, i_pre.dtype))
    return i_pre, jnp.where(mask, log_f, jnp.zeros((), log_f.dtype))


def _empty(q, carry):
    """The result of zero steps: the carry unchanged, no outputs."""
    return carry, jnp.zeros(q.shape, jnp.result_type(q, carry.C))


# ---------------------------------------------------------------------- the forms


def mlstm_scan(
    q, k, v, i_pre, f_pre, carry, *, valid=None, forget_gate="sigmoid", eps=1e-6
):
    """The recurrence, step by step (the reference); shapes and result in the
    module docstring."""
    check_core_args(q, k, v, i_pre, f_pre, carry, valid, forget_gate, eps)
    q, k, v, i_pre, f_pre = _masked(q, k, v, i_pre, f_pre, valid)
    time_major = (
        *(jnp.moveaxis(x, -2, 0) for x in (q, k, v)),
        *(jnp.moveaxis(x, -1, 0) for x in (i_pre, f_pre)),
        None if valid is None else jnp.moveaxis(valid, -1, 0),
    )

    def body(state, step):
        *args, ok = step
        new, h = mlstm_step(state, *args, forget_gate=forget_gate, eps=eps)
        if ok is not None:
            ok = ok[..., None]  # (*B, 1): every head
            new = tree_where(ok, new, state)
            h = jnp.where(broadcast_mask(ok, h), h, jnp.zeros((), h.dtype))
        return new, h

    carry_t, hs = lax.scan(body, carry, time_major)
    return carry_t, jnp.moveaxis(hs, 0, -2)


def mlstm_parallel(
    q, k, v, i_pre, f_pre, carry, *, valid=None, forget_gate="sigmoid", eps=1e-6
):
    """The quadratic form (all steps at once, ``O(T^2)`` memory per head); shapes
    and result in the module docstring."""
    check_core_args(q, k, v, i_pre, f_pre, carry, valid, forget_gate, eps)
    if q.shape[-2] == 0:
        return _empty(q, carry)
    q, k, v, i_pre, f_pre = _masked(q, k, v, i_pre, f_pre, valid)
    i_pre, log_f = _gates(i_pre, f_pre, valid, forget_gate)
    h = chunk_outputs(q, k, v, i_pre, log_f, carry, eps)
    return chunk_end_state(k, v, i_pre, log_f, carry), _zero_invalid(h, valid)


def mlstm_chunkwise(
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
):
    """The chunkwise form (``O(T * chunk_size)`` memory); shapes and result in the
    module docstring."""
    check_core_args(q, k, v, i_pre, f_pre, carry, valid, forget_gate, eps)
    check_positive_int(chunk_size, "chunk_size")
    num_steps = q.shape[-2]
    if num_steps == 0:
        return _empty(q, carry)
    q, k, v, i_pre, f_pre = _masked(q, k, v, i_pre, f_pre, valid)
    i_pre, log_f = _gates(i_pre, f_pre, valid, forget_gate)
    size = min(chunk_size, num_steps)
    num_chunks = -(-num_steps // size)
    pad = num_chunks * size - num_steps
    if pad:  # identity steps at the end
        q, k, v = (_pad_time(x, -2, pad, 0.0) for x in (q, k, v))
        i_pre = _pad_time(i_pre, -1, pad, -jnp.inf)
        log_f = _pad_time(log_f, -1, pad, 0.0)

    def chunks(x, axis):  # (..., T, [DH]) -> (..., N, C, [DH])
        lead, rest = x.shape[: x.ndim + axis], x.shape[x.ndim + axis + 1 :]
        return x.reshape(*lead, num_chunks, size, *rest)

    q, k, v = (chunks(x, -2) for x in (q, k, v))
    i_pre, log_f = chunks(i_pre, -1), chunks(log_f, -1)

    def boundary(state, chunk):
        return chunk_end_state(*chunk, state), state

    per_chunk = (
        jnp.moveaxis(k, -3, 0),
        jnp.moveaxis(v, -3, 0),
        jnp.moveaxis(i_pre, -2, 0),
        jnp.moveaxis(log_f, -2, 0),
    )
    carry_t, starts = lax.scan(boundary, carry, per_chunk)
    starts = MLSTMState(
        jnp.moveaxis(starts.C, 0, -3),
        jnp.moveaxis(starts.n, 0, -2),
        jnp.moveaxis(starts.m, 0, -1),
    )  # (*B, NH, N, ...): the state before each chunk
    h = chunk_outputs(q, k, v, i_pre, log_f, starts, eps)  # (*B, NH, N, C, DH)
    h = h.reshape(*h.shape[:-3], num_chunks * size, h.shape[-1])[..., :num_steps, :]
    return carry_t, _zero_invalid(h, valid)


def mlstm_sequence(
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
    impl="auto",
    chunk_size=64,
):
    """The core by ``impl``: ``"scan"``, ``"parallel"``, ``"chunkwise"`` or
    ``"auto"`` (the chunkwise form, which is the parallel form when
    ``T <= chunk_size``)."""
    if impl not in FORMS:
        raise ValueError(f"impl: expected one of {FORMS}, got {impl!r}")
    kwargs = dict(valid=valid, forget_gate=forget_gate, eps=eps)
    if impl == "scan":
        return mlstm_scan(q, k, v, i_pre, f_pre, carry, **kwargs)
    if impl == "parallel":
        return mlstm_parallel(q, k, v, i_pre, f_pre, carry, **kwargs)
    return mlstm_chunkwise(
        q, k, v, i_pre, f_pre, carry, chunk_size=chunk_size, **kwargs
    )


# ---------------------------------------------------------------------- one chunk


def chunk_outputs(q, k, v, i_pre, log_f, carry, eps):
    """``h (..., C, DH)`` of the steps of a chunk started from ``carry``, all at
    once (the parallel form): ``q, k, v (..., C, DH)``, ``i_pre, log_f (..., C)``
    (invalid steps as ``-inf`` and ``0``), ``carry`` leaves ``(..., DH, DH)``,
    ``(..., DH)``, ``(...)``."""
    C0, n0, m0 = carry
    cum = jnp.cumsum(log_f, axis=-1)  # F_t within the chunk
    size = cum.shape[-1]
    causal = jnp.tril(jnp.ones((size, size), bool)).reshape(
        (1,) * (cum.ndim - 1) + (size, size)
    )
    log_d = cum[..., :, None] - cum[..., None, :] + i_pre[..., None, :]
    log_d = jnp.where(causal, log_d, jnp.full((), -jnp.inf, log_d.dtype))
    log_w0 = cum + m0[..., None]  # the carry's weight
    m = jnp.maximum(jnp.max(log_d, axis=-1), log_w0)  # m_t of the recurrence
    d = jnp.exp(log_d - m[..., None])
    w0 = jnp.exp(log_w0 - m)
    s = jnp.einsum("...td,...jd->...tj", q, k) * d
    qn = jnp.sum(s, axis=-1) + w0 * jnp.einsum("...tk,...k->...t", q, n0)
    den = jnp.maximum(jnp.abs(qn), jnp.exp(-m)) + eps
    # Normalised before the product with v, as the xlstm package does. Dividing
    # the product instead (``(s @ v) / den``) is the same maths, but XLA:CPU
    # (jax 0.10.2) miscompiled it under jit for T >= 1024 with 4 heads: values
    # up to 1e31, different in each process (tests/kernels/test_mlstm_forms.py).
    h = jnp.einsum("...tj,...jv->...tv", s / den[..., None], v)
    return h + (w0 / den)[..., None] * jnp.einsum("...tk,...kv->...tv", q, C0)


def chunk_end_state(k, v, i_pre, log_f, carry):
    """The `MLSTMState` after the steps of a chunk started from ``carry`` (shapes
    as `chunk_outputs`), with ``m`` the recurrence's ``m`` at the last step."""
    C0, n0, m0 = carry
    cum = jnp.cumsum(log_f, axis=-1)
    total = cum[..., -1]
    log_w = total[..., None] - cum + i_pre  # weight of each step's k v^T at the end
    m = jnp.maximum(total + m0, jnp.max(log_w, axis=-1))
    w = jnp.exp(log_w - m[..., None])
    f = jnp.exp(total + m0 - m)
    C = f[..., None, None] * C0 + jnp.einsum("...jk,...jv->...kv", k * w[..., None], v)
    n = f[..., None] * n0 + jnp.einsum("...j,...jk->...k", w, k)
    return MLSTMState(C, n, m)


def _pad_time(x, axis, pad, value):
    """``x`` with ``pad`` steps of ``value`` appended along the time ``axis``."""
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, pad)
    return jnp.pad(x, widths, constant_values=value)


def _zero_invalid(h, valid):
    """``h (*B, NH, T, DH)`` with zeros at the steps where ``valid (*B, T)`` is
    false."""
    if valid is None:
        return h
    mask = valid[..., None, :, None]
    return jnp.where(mask, h, jnp.zeros((), h.dtype))


__all__ = [
    "FORMS",
    "chunk_end_state",
    "chunk_outputs",
    "check_core_args",
    "mlstm_chunkwise",
    "mlstm_parallel",
    "mlstm_scan",
    "mlstm_sequence",
]

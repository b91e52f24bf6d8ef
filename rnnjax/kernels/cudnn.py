"""``impl="cudnn"``: the plain LSTM through cuDNN (``jax.experimental.rnn``).

cuDNN runs a whole layer in one call: the input projection, the time loop and
its own backward pass (a ``custom_vjp`` in JAX). It takes the raw inputs, not the
projected ones, so it is not a recurrence of the `rnnjax.kernels` contract:
`rnnjax.unroll` calls `unroll_layer` in its place (batch-major, reversal
included), and every layer of a ``Stack`` (each direction of a
``Bidirectional``) is one cuDNN call.

What it runs: ``rnnjax.lstm(H)`` with its default options (initialisers and
``forget_bias`` may differ), float32, with ``seq_lengths``, ``reverse`` and an
initial carry. Not resets, recurrent dropout masks (``rec_mask``), ``remat``,
``vmap`` (the cuDNN call has no batching rule) or forward-mode derivatives; those
raise ValueError naming ``impl``, before any compute.

Where: a process with a CUDA (or ROCm) backend; JAX asks cuDNN for its workspace
size while tracing, so the call cannot even be traced, let alone lowered or
compiled, without a GPU. Elsewhere it raises ValueError naming ``impl``. The
values are those of ``impl="scan"`` to TF32 rounding (cuDNN's float32 products
use TF32 under JAX's default matmul precision, like XLA's).

Weight layout: cuDNN packs ``(W_ih, W_hh)`` of every pseudo-layer, then their
``(b_ih, b_hh)``, each matrix ``(4H, I)`` / ``(4H, H)`` with the gates in the order
``i, f, g, o`` (PyTorch's, and rnnjax's: ``W_ih = w_x.T``, see
``rnnjax.interop.pytorch``); rnnjax's one bias goes in ``b_ih`` and ``b_hh`` is
zero. `pack_weights` builds that vector.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.experimental import rnn

from rnnjax.cells.lstm import LSTM, LSTMState
from rnnjax.kernels.pallas import unsupported_reason
from rnnjax.kernels.scan import reversal_order

# The cuDNN call, ``jax.experimental.rnn.lstm``'s signature; tests on a CPU put
# `reference_lstm` here to check everything around it.
lstm_call = rnn.lstm


def reference_lstm(
    x, h_0, c_0, weights, seq_lengths, input_size, hidden_size, num_layers,
    dropout, bidirectional, precision=None,
):  # fmt: skip
    """``jax.experimental.rnn.lstm`` in plain JAX (``lstm_ref`` over the same
    packed ``weights``), for checking the layout and masking on any backend."""
    del dropout, precision
    weights_ih, weights_hh, bias_ih, bias_hh = rnn.unpack_lstm_weights(
        weights, input_size, hidden_size, num_layers, bidirectional
    )
    return rnn.lstm_ref(
        x, h_0, c_0, weights_ih, weights_hh, bias_ih, bias_hh, seq_lengths,
        input_size, hidden_size, num_layers, 0.0, bidirectional,
    )  # fmt: skip


def available() -> bool:
    """Whether this process can trace a cuDNN LSTM: it has a GPU backend and
    JAX's GPU RNN library."""
    if getattr(rnn, "gpu_rnn", None) is None:
        return False
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


def check_supported(cell, *, resets, rec_mask, remat, dtype) -> None:
    """Raises ValueError naming ``impl`` for what ``impl="cudnn"`` cannot run."""
    reason = None
    if type(cell) is not LSTM:
        reason = f"rnnjax.lstm(H) only, not {type(cell).__name__}"
    elif (why := unsupported_reason(cell)) is not None:
        reason = why
    elif cell.dtype is not None and jnp.dtype(cell.dtype) != jnp.float32:
        reason = f"float32 only (cuDNN through JAX), got dtype={cell.dtype!r}"
    elif jnp.dtype(dtype) != jnp.float32:
        reason = f"float32 inputs only, got xs of dtype {jnp.dtype(dtype)}"
    elif resets is not None:
        reason = "no resets (cuDNN has no per-step carry reset)"
    elif rec_mask is not None:
        reason = "no rec_mask (cuDNN has no recurrent dropout mask)"
    elif remat is not None:
        reason = f"remat=None only (cuDNN keeps its own reserve), got {remat!r}"
    if reason is not None:
        raise ValueError(
            f"impl: 'cudnn' cannot run this: it runs {reason} "
            "(use impl='fused', 'scan' or 'auto')"
        )
    if lstm_call is rnn.lstm and not available():
        raise ValueError(
            "impl: 'cudnn' needs a CUDA GPU with cuDNN (jax.experimental.rnn); "
            f"this process has the {jax.default_backend()!r} backend only "
            "(use impl='auto')"
        )


def pack_weights(params, input_size: int):
    """The cuDNN weight vector of one layer, one direction: ``W_ih (4H, I)``,
    ``W_hh (4H, H)``, ``b_ih (4H,)``, ``b_hh (4H,) = 0``."""
    w_x = params["w_x"].reshape(input_size, -1)
    bias = params.get("b")
    if bias is None:
        bias = jnp.zeros(w_x.shape[-1], w_x.dtype)
    parts = (w_x.T, params["w_h"].T, bias, jnp.zeros_like(bias))
    return jnp.concatenate([p.astype(jnp.float32).ravel() for p in parts])


def unroll_layer(cell, params, carry, xs, lengths, reverse):
    """One cuDNN call over batch-major ``xs (*B, T, I)`` from ``carry`` (an
    ``LSTMState`` of ``(*B, H)``), ``lengths (*B,)`` or ``None``, each valid
    prefix reversed when ``reverse``. Returns ``(carry_T, ys (*B, T, H))``, ``ys``
    zero past each length and ``carry_T`` the state after each sequence's last
    valid step.

    Everything stays batch-major: XLA:GPU has handed the cuDNN call a time-major
    gather's output, transposed, as a mere bitcast of it (wrong values; seen on an
    H200 with jax 0.11.2), so no transpose may sit between them.
    """
    *batch, T, I = xs.shape
    H = cell.hidden_size
    B = math.prod(batch)
    flat = lambda a: a.reshape(B, H)
    full = lengths is None
    lengths = jnp.full((B,), T, jnp.int32) if full else lengths.reshape(B)
    lengths = jnp.clip(lengths.astype(jnp.int32), 0, T)
    x = xs.reshape(B, T, I).astype(jnp.float32)
    if reverse:
        x = _reverse_prefixes(x, lengths, full)
    # cuDNN needs every length >= 1: run empty sequences one step, keep carry0.
    empty = lengths == 0
    ys, h_n, c_n = lstm_call(
        x,
        flat(carry.h)[None],
        flat(carry.c)[None],
        pack_weights(params, I),
        jnp.maximum(lengths, 1),
        input_size=I,
        hidden_size=H,
        num_layers=1,
        dropout=0.0,
        bidirectional=False,
    )
    valid = jnp.arange(T)[None, :] < lengths[:, None]  # (B, T)
    ys = jnp.where(valid[..., None], ys, 0.0)
    if reverse:
        ys = _reverse_prefixes(ys, lengths, full)
    keep = lambda new, old: jnp.where(empty[:, None], flat(old), new[0])
    state = LSTMState(
        c=keep(c_n, carry.c).reshape(*batch, H), h=keep(h_n, carry.h).reshape(*batch, H)
    )
    return state, ys.reshape(*batch, T, H).astype(carry.h.dtype)


def _reverse_prefixes(x, lengths, full: bool):
    """``x (B, T, F)`` with each row's first ``lengths`` steps reversed (the rest
    in place); its own inverse."""
    if full:
        return jnp.flip(x, axis=1)
    order = reversal_order(x.shape[1], lengths, 1).T  # (B, T)
    return jnp.take_along_axis(x, order[..., None], axis=1)

"""Soft attention (Bahdanau et al. 2015; Luong et al. 2015) and the attention-LSTM
decoder of Show, Attend and Tell (Xu et al. 2015, soft attention).

Shapes (the package legend, `rnnjax`): ``B`` batch, ``M`` annotations, ``U``
annotation features, ``Q`` query features, ``A`` attention width, ``T`` time, ``I``
input features, ``H`` hidden.

A score is an immutable object of pure functions over a parameter pytree:

- ``init(key, query_size, key_size) -> params``;
- ``keys(params, annotations (*B, M, U)) -> keys (*B, M, A)``: the annotation side,
  computed once per sequence, not once per decoder step;
- ``score(params, query (*B, Q), keys) -> e (*B, M)``;
- ``attend(params, query, annotations, mask=None, keys=None) -> (context (*B, U),
  weights (*B, M))``: ``weights = softmax(e)`` over the unmasked annotations
  (masked ones get exactly zero; a row with none unmasked gets zero weights and a
  zero context), ``context = sum_i weights_i a_i``.

The scores:

    bahdanau:       e_i = v^T tanh(W_q q + W_k a_i + b)     keys = a W_k + b
    luong_dot:      e_i = q^T a_i                           keys = a   (Q == U)
    luong_general:  e_i = q^T W a_i                         keys = a W^T

with ``w_q (Q, A)``, ``w_k (U, A)``, ``b (A,)``, ``v (A,)`` and, for ``general``,
``w (U, Q)`` holding ``W^T`` (so that ``keys = a @ w``).

The decoder (`attention_decoder`), for annotations ``a (*B, M, U)``:

    c_0 = tanh(mean_i(a_i) W_c + b_c),   h_0 = tanh(mean_i(a_i) W_h + b_h)
    alpha_t = softmax_i(score(h_{t-1}, a_i))              (over unmasked a_i)
    beta_t  = sigmoid(h_{t-1} w_beta + b_beta)            (a scalar; 1 if gate=False)
    z_t     = beta_t * sum_i alpha_ti a_i
    (c_t, h_t) = LSTM([x_t, z_t], (c_{t-1}, h_{t-1}))

where ``x_t`` is the step's input (``E y_{t-1}`` in the paper; the given inputs for
teacher forcing). The initial-state MLPs are one ``tanh`` layer each, as in the
authors' code (arctic-captions); with a mask the mean is over unmasked annotations.
The LSTM is `rnnjax.lstm` with ``w_x (I + U, 4H)``: rows ``[:I]`` take
``x_t`` (projected for all steps at once) and rows ``[I:]`` take ``z_t`` (projected
inside the step, since ``z_t`` depends on ``h_{t-1}``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax import _validate
from rnnjax.cells.base import (
    check_key,
    check_positive_int,
    expand,
    glorot_uniform,
    linear,
)
from rnnjax.cells.lstm import LSTMState, lstm

Array = jax.Array

# ------------------------------------------------------------------- masked softmax


def masked_softmax(scores: Array, mask: Array | None = None) -> Array:
    """Softmax over the last axis of ``scores (*B, M)`` restricted to ``mask``.

    Masked positions get exactly zero; a row with no unmasked position gets all
    zeros (not NaN). Gradients are finite everywhere.
    """
    if mask is None:
        return jax.nn.softmax(scores, axis=-1)
    any_valid = jnp.any(mask, axis=-1, keepdims=True)
    top = jnp.max(jnp.where(mask, scores, -jnp.inf), axis=-1, keepdims=True)
    top = lax.stop_gradient(jnp.where(any_valid, top, jnp.zeros_like(top)))
    safe = jnp.where(mask, scores, top)  # masked: exp(0), never inf
    e = jnp.where(mask, jnp.exp(safe - top), jnp.zeros_like(scores))
    total = jnp.sum(e, axis=-1, keepdims=True)
    return e / jnp.where(total > 0, total, jnp.ones_like(total))


def _check_attend(query, annotations, mask, keys, sizes):
    """Trace-time shape checks; ``sizes()`` is ``(Q, U)`` as the params expect."""
    for name, x, rank in (("query", query, 1), ("annotations", annotations, 2)):
        if not hasattr(x, "ndim") or x.ndim < rank:
            raise ValueError(
                f"{name}: expected an array of rank >= {rank}, got "
                f"{getattr(x, 'shape', type(x).__name__)}"
            )
    query_size, key_size = sizes()
    batch = annotations.shape[:-2]
    if query.shape[:-1] != batch:
        raise ValueError(
            f"query: expected shape {(*batch, query_size or 'Q')} (the batch of "
            f"annotations {annotations.shape}), got {query.shape}"
        )
    if query_size is not None and query.shape[-1] != query_size:
        raise ValueError(
            f"query: expected {query_size} features, got shape {query.shape}"
        )
    if key_size is not None and annotations.shape[-1] != key_size:
        raise ValueError(
            f"annotations: expected {key_size} features, got shape {annotations.shape}"
        )
    if mask is not None and tuple(jnp.shape(mask)) != annotations.shape[:-1]:
        raise ValueError(
            f"mask: expected shape {annotations.shape[:-1]}, got {jnp.shape(mask)}"
        )
    if keys is not None and tuple(jnp.shape(keys))[:-1] != annotations.shape[:-1]:
        raise ValueError(
            f"keys: expected shape {(*annotations.shape[:-1], 'A')}, got "
            f"{jnp.shape(keys)}"
        )


def _weighted_sum(weights: Array, annotations: Array) -> Array:
    """``sum_i weights_i a_i``: ``(*B, M), (*B, M, U) -> (*B, U)``."""
    return jnp.einsum("...n,...nd->...d", weights, annotations)


@dataclasses.dataclass(frozen=True)
class _Score:
    """Shared ``attend`` of the scores; subclasses define init, keys and score."""

    def attend(self, params, query, annotations, mask=None, keys=None):
        """``(context (*B, U), weights (*B, M))``; ``keys`` from `keys`
        (computed here when ``None``)."""
        _check_attend(query, annotations, mask, keys, lambda: self.sizes(params, query))
        if mask is not None:
            mask = jnp.asarray(mask, bool)
        if keys is None:
            keys = self.keys(params, annotations)
        weights = masked_softmax(self.score(params, query, keys), mask)
        return _weighted_sum(weights, annotations), weights


@dataclasses.dataclass(frozen=True)
class Bahdanau(_Score):
    """Additive score ``v^T tanh(W_q q + W_k a + b)`` (Bahdanau et al. 2015)."""

    attention_size: int

    def __post_init__(self):
        check_positive_int(self.attention_size, "attention_size")

    def sizes(self, params, query):
        return params["w_q"].shape[0], params["w_k"].shape[0]

    def init(self, key, query_size: int, key_size: int):
        """``w_q (Q, A)``, ``w_k (U, A)`` Glorot uniform; ``b (A,)`` zeros;
        ``v (A,)`` Glorot uniform (as an ``(A, 1)`` matrix)."""
        check_key(key, "key")
        check_positive_int(query_size, "query_size")
        check_positive_int(key_size, "key_size")
        kq, kk, kv = jax.random.split(key, 3)
        A, glorot = self.attention_size, glorot_uniform()
        return {
            "w_q": glorot(kq, (query_size, A), jnp.float32),
            "w_k": glorot(kk, (key_size, A), jnp.float32),
            "b": jnp.zeros((A,), jnp.float32),
            "v": glorot(kv, (A, 1), jnp.float32).reshape(A),
        }

    def keys(self, params, annotations):
        """``a W_k + b``: ``(*B, M, U) -> (*B, M, A)``."""
        return linear(annotations, params["w_k"]) + expand(
            params["b"], annotations.ndim
        )

    def score(self, params, query, keys):
        """``v^T tanh(q W_q + keys)``: ``(*B, Q), (*B, M, A) -> (*B, M)``."""
        q = linear(query, params["w_q"])[..., None, :]
        return linear(jnp.tanh(keys + q), params["v"][:, None])[..., 0]


@dataclasses.dataclass(frozen=True)
class LuongDot(_Score):
    """Dot score ``q^T a`` (Luong et al. 2015); needs ``Q == U``; no parameters."""

    def init(self, key, query_size: int, key_size: int):
        check_key(key, "key")
        if query_size != key_size:
            raise ValueError(
                "luong_dot scores q^T a: expected query_size == key_size, got "
                f"{query_size} and {key_size}"
            )
        return {}

    def sizes(self, params, query):
        return query.shape[-1], query.shape[-1]  # U must equal Q

    def keys(self, params, annotations):
        return annotations

    def score(self, params, query, keys):
        """``q^T k``: ``(*B, Q), (*B, M, Q) -> (*B, M)``."""
        return jnp.einsum("...q,...nq->...n", query, keys)


@dataclasses.dataclass(frozen=True)
class LuongGeneral(_Score):
    """General score ``q^T W a`` (Luong et al. 2015); ``w (U, Q)`` is ``W^T``."""

    def init(self, key, query_size: int, key_size: int):
        check_key(key, "key")
        check_positive_int(query_size, "query_size")
        check_positive_int(key_size, "key_size")
        return {"w": glorot_uniform()(key, (key_size, query_size), jnp.float32)}

    def sizes(self, params, query):
        return params["w"].shape[1], params["w"].shape[0]

    def keys(self, params, annotations):
        """``a W^T``: ``(*B, M, U) -> (*B, M, Q)``."""
        return linear(annotations, params["w"])

    def score(self, params, query, keys):
        return jnp.einsum("...q,...nq->...n", query, keys)


def bahdanau(attention_size: int) -> Bahdanau:
    """The additive score of Bahdanau et al. 2015 with ``A = attention_size``."""
    return Bahdanau(attention_size)


def luong_dot() -> LuongDot:
    """The dot score of Luong et al. 2015 (``Q == U``)."""
    return LuongDot()


def luong_general() -> LuongGeneral:
    """The general (bilinear) score of Luong et al. 2015."""
    return LuongGeneral()


def attend(score, params, query, annotations, mask=None, keys=None):
    """``score.attend(params, query, annotations, mask, keys)``: the context
    ``(*B, U)`` and the weights ``(*B, M)`` (see the module docstring)."""
    return score.attend(params, query, annotations, mask, keys)


# --------------------------------------------------------------------- the decoder

ATTENTIONS = ("bahdanau", "luong_dot", "luong_general")


@dataclasses.dataclass(frozen=True)
class AttentionDecoder:
    """The Show, Attend and Tell decoder; see `attention_decoder`.

    Parameters (from `init`): ``init_c`` and ``init_h`` (``w (U, H)``,
    ``b (H,)``), ``attention`` (the score's), ``beta`` (``w (H,)``, ``b ()``; only
    with ``gate``) and ``lstm`` (``rnnjax.lstm(H)`` for inputs of size ``I + U``).
    """

    hidden_size: int
    annotation_size: int
    input_size: int
    attention: str = "bahdanau"
    gate: bool = True
    attention_size: int | None = None

    def __post_init__(self):
        for name in ("hidden_size", "annotation_size", "input_size"):
            check_positive_int(getattr(self, name), name)
        if self.attention not in ATTENTIONS:
            raise ValueError(
                f"attention: expected one of {ATTENTIONS}, got {self.attention!r}"
            )
        if self.attention == "luong_dot" and self.hidden_size != self.annotation_size:
            raise ValueError(
                "attention='luong_dot' scores h^T a: expected hidden_size == "
                f"annotation_size, got {self.hidden_size} and {self.annotation_size}"
            )
        if self.attention_size is not None:
            check_positive_int(self.attention_size, "attention_size")

    @property
    def score(self):
        if self.attention == "bahdanau":
            return bahdanau(self.attention_size or self.hidden_size)
        return luong_dot() if self.attention == "luong_dot" else luong_general()

    @property
    def cell(self):
        return lstm(self.hidden_size)

    def init(self, key) -> dict[str, Any]:
        """Fresh parameters: Glorot-uniform weights, zero biases (the LSTM's as
        `rnnjax.lstm`: forget bias 1, orthogonal recurrent blocks)."""
        check_key(key, "key")
        kc, kh, ka, kb, kl = jax.random.split(key, 5)
        U, H, glorot = self.annotation_size, self.hidden_size, glorot_uniform()
        params = {
            "init_c": {"w": glorot(kc, (U, H), jnp.float32), "b": jnp.zeros((H,))},
            "init_h": {"w": glorot(kh, (U, H), jnp.float32), "b": jnp.zeros((H,))},
            "attention": self.score.init(ka, H, U),
            "lstm": self.cell.init(kl, self.input_size + U),
        }
        if self.gate:
            w = glorot(kb, (H, 1), jnp.float32).reshape(H)
            params["beta"] = {"w": w, "b": jnp.zeros((), jnp.float32)}
        return params

    # ------------------------------------------------------------ pieces

    def initial_carry(self, params, annotations, mask=None) -> LSTMState:
        """``(c_0, h_0)`` from the (masked) mean annotation; leaves ``(*B, H)``."""
        if mask is None:
            mean = jnp.mean(annotations, axis=-2)
        else:
            m = jnp.asarray(mask, annotations.dtype)[..., None]
            count = jnp.maximum(jnp.sum(m, axis=-2), 1.0)
            mean = jnp.sum(annotations * m, axis=-2) / count

        def mlp(p):
            return jnp.tanh(linear(mean, p["w"]) + expand(p["b"], mean.ndim))

        return LSTMState(c=mlp(params["init_c"]), h=mlp(params["init_h"]))

    def keys(self, params, annotations):
        """The annotation side of the score, once per sequence: ``(*B, M, A)``."""
        return self.score.keys(params["attention"], annotations)

    def context(self, params, h, annotations, keys, mask=None):
        """``(z_t (*B, U), alpha_t (*B, M))`` from ``h_{t-1} (*B, H)``."""
        alpha = masked_softmax(self.score.score(params["attention"], h, keys), mask)
        z = _weighted_sum(alpha, annotations)
        if self.gate:
            p = params["beta"]
            beta = jax.nn.sigmoid(linear(h, p["w"][:, None]) + p["b"])  # (*B, 1)
            z = beta * z
        return z, alpha

    def _split_lstm(self, params):
        """(params projecting ``x_t`` (rows ``[:I]``, with the bias), ``w (U, 4H)``
        projecting ``z_t``)."""
        lp = params["lstm"]
        return dict(lp, w_x=lp["w_x"][: self.input_size]), lp["w_x"][self.input_size :]

    def _recur(self, params, carry, zx, annotations, keys, mask, w_z):
        z, alpha = self.context(params, carry.h, annotations, keys, mask)
        carry, h = self.cell.recur(params["lstm"], carry, zx + linear(z, w_z))
        return carry, (h, alpha)

    def step(self, params, carry, x, annotations, keys, mask=None):
        """One step for free-running decoding (``x (*B, I)`` = ``E y_{t-1}``):
        ``(carry, (h_t (*B, H), alpha_t (*B, M)))``; ``keys`` from `keys`."""
        px, w_z = self._split_lstm(params)
        zx = self.cell.project(px, x)
        mask = None if mask is None else jnp.asarray(mask, bool)
        return self._recur(params, carry, zx, annotations, keys, mask, w_z)

    # ------------------------------------------------------------ decode

    def decode(self, params, annotations, xs, mask=None, seq_lengths=None):
        """Runs the decoder over the given inputs (teacher forcing).

        Args:
          params: from `init`.
          annotations: ``(*B, M, U)``.
          xs: ``(*B, T, I)``, the step inputs (``E y_{t-1}``).
          mask: optional boolean ``(*B, M)``: annotations to attend to.
          seq_lengths: optional integer ``(*B,)``: valid lengths of right-padded
            ``xs``. Past a sequence's length, outputs and alphas are zero.

        Returns:
          ``(outputs (*B, T, H), alphas (*B, T, M))``: ``h_t`` and ``alpha_t``.
        """
        num_steps, batch, lengths = self._check(annotations, xs, mask, seq_lengths)
        if mask is not None:
            mask = jnp.asarray(mask, bool)
        keys = self.keys(params, annotations)  # once per sequence
        carry = self.initial_carry(params, annotations, mask)
        px, w_z = self._split_lstm(params)
        zxs = jnp.moveaxis(self.cell.project(px, xs), -2, 0)  # all steps at once
        valid = None
        if lengths is not None:
            steps = jnp.arange(num_steps).reshape((num_steps,) + (1,) * len(batch))
            valid = steps < lengths[None]

        def body(carry, inputs):
            zx, ok = inputs
            new, (h, alpha) = self._recur(
                params, carry, zx, annotations, keys, mask, w_z
            )
            if ok is not None:
                keep = lambda n, o: jnp.where(ok[..., None], n, o)
                new = jax.tree.map(keep, new, carry)
                h = jnp.where(ok[..., None], h, jnp.zeros_like(h))
                alpha = jnp.where(ok[..., None], alpha, jnp.zeros_like(alpha))
            return new, (h, alpha)

        _, (hs, alphas) = lax.scan(body, carry, (zxs, valid))
        return jnp.moveaxis(hs, 0, -2), jnp.moveaxis(alphas, 0, -2)

    def _check(self, annotations, xs, mask, seq_lengths):
        U, I = self.annotation_size, self.input_size
        if not hasattr(annotations, "ndim") or annotations.ndim < 2:
            raise ValueError(
                f"annotations: expected (*B, M, {U}), got "
                f"{getattr(annotations, 'shape', type(annotations).__name__)}"
            )
        if annotations.shape[-1] != U:
            raise ValueError(
                f"annotations: expected (*B, M, {U}), got shape {annotations.shape}"
            )
        batch = annotations.shape[:-2]
        if not hasattr(xs, "ndim") or xs.shape[:-2] != batch or xs.shape[-1:] != (I,):
            raise ValueError(
                f"xs: expected {(*batch, 'T', I)} (the batch of annotations "
                f"{annotations.shape}), got {getattr(xs, 'shape', type(xs).__name__)}"
            )
        if mask is not None and tuple(jnp.shape(mask)) != annotations.shape[:-1]:
            raise ValueError(
                f"mask: expected shape {annotations.shape[:-1]}, got {jnp.shape(mask)}"
            )
        num_steps = xs.shape[-2]
        lengths = _validate.check_lengths_arg(seq_lengths, batch, num_steps)
        return num_steps, batch, lengths


def attention_decoder(
    hidden_size: int,
    annotation_size: int,
    input_size: int,
    attention: str = "bahdanau",
    gate: bool = True,
    *,
    attention_size: int | None = None,
) -> AttentionDecoder:
    """The soft-attention LSTM decoder of Show, Attend and Tell (Xu et al. 2015).

    Args:
      hidden_size: ``H``.
      annotation_size: ``U``, the size of each annotation vector.
      input_size: ``I``, the size of the step inputs (the word embeddings).
      attention: ``"bahdanau"`` (the paper's MLP score), ``"luong_dot"`` (needs
        ``H == U``) or ``"luong_general"``.
      gate: the gating scalar ``beta_t = sigmoid(f_beta(h_{t-1}))`` on the context.
      attention_size: ``A`` of the Bahdanau score (default ``H``).

    Returns an immutable object with ``init(key)``, ``decode(params, annotations,
    xs, mask=None, seq_lengths=None)``, and the pieces ``initial_carry``, ``keys``,
    ``context`` and ``step`` for free-running decoding.
    """
    return AttentionDecoder(
        hidden_size, annotation_size, input_size, attention, gate, attention_size
    )


def doubly_stochastic_penalty(
    alphas, mask=None, seq_lengths=None, *, lam: float = 1.0, target: float = 1.0
):
    """``lam * sum_i (target - sum_t alpha_ti)^2`` per sequence (Xu et al. 2015,
    section 4.2.1): encourages the decoder to attend to every annotation over the
    sequence. Add its mean over the batch to the loss.

    Args:
      alphas: ``(*B, T, M)``, from `AttentionDecoder.decode`.
      mask: optional boolean ``(*B, M)``: only unmasked annotations are penalised.
      seq_lengths: optional integer ``(*B,)``: steps past a length are left out of
        ``sum_t`` (``decode`` already zeroes them).
      lam: ``lambda``.
      target: 1 in the paper and the authors' code (arctic-captions); attention
        models for translation (Nematus) use ``T / M``.

    Returns: ``(*B,)``.
    """
    if not hasattr(alphas, "ndim") or alphas.ndim < 2:
        raise ValueError(f"alphas: expected (*B, T, M), got {jnp.shape(alphas)}")
    batch, num_steps = alphas.shape[:-2], alphas.shape[-2]
    if seq_lengths is not None:
        lengths = _validate.check_lengths_arg(seq_lengths, batch, num_steps)
        steps = jnp.arange(num_steps).reshape((1,) * len(batch) + (num_steps, 1))
        valid = steps < lengths[..., None, None]
        alphas = jnp.where(valid, alphas, jnp.zeros_like(alphas))
    sq = jnp.square(target - jnp.sum(alphas, axis=-2))  # (*B, M)
    if mask is not None:
        if tuple(jnp.shape(mask)) != (*batch, alphas.shape[-1]):
            raise ValueError(
                f"mask: expected shape {(*batch, alphas.shape[-1])}, got "
                f"{jnp.shape(mask)}"
            )
        sq = jnp.where(jnp.asarray(mask, bool), sq, jnp.zeros_like(sq))
    return lam * jnp.sum(sq, axis=-1)

"""The pieces the xLSTM layers and blocks are built from (Beck et al. 2024, and the
``xlstm`` package's ``components``): causal depthwise convolution, the layer norm
and the per-head ("multi-head", group) norm, the gated feed-forward network,
dropout, the package's initialisers, and `apply_model`, the checked entry point
every xLSTM model's ``apply`` is.

Shapes: ``*B`` batch, ``T`` time, ``E`` the features the piece acts on
(``embedding_dim`` or an inner width); ``W`` the convolution's kernel size;
the number of heads is named in words (``num_heads``).

Parameter conventions (those of the package, so weights convert as they are):

- a norm keeps a *residual* weight: ``scale = 1 + weight`` (the package's
  ``LayerNorm(residual_weight=True)``, so weight decay pulls the scale to 1), an
  optional ``bias``; epsilon ``1e-5``; ``{"weight": (E,)}`` (absent when the norm
  has no weight: scale 1);
- a dense map is ``{"w": (E_in, E_out), "b": (E_out,)}`` (no ``b`` without bias),
  ``y = x @ w + b``;
- the causal convolution is ``{"w": (W, E), "b": (E,)}``,
  ``y_t = sum_j w[j] * x_{t-W+1+j} + b`` (PyTorch's ``Conv1d`` depthwise weight
  ``(E, 1, W)`` is ``w.T``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax import _validate
from rnnjax.cells.base import check_positive_int, expand, linear
from rnnjax.layers.directional import check_dropout_key, check_options
from rnnjax.unroll import UnrollOptions, match_varying_axes

Array = jax.Array

NORM_EPS = 1e-5

ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "relu": jax.nn.relu,
    "relu^2": lambda x: jnp.square(jax.nn.relu(x)),
    "sigmoid": jax.nn.sigmoid,
    "swish": jax.nn.silu,
    "selu": jax.nn.selu,
}


# ------------------------------------------------------------------ initialisers


def small_init(key, shape, dim: int) -> Array:
    """Normal with std ``sqrt(2 / (5 dim))`` (Nguyen & Salazar 2019; the package's
    ``small_init_init_``)."""
    return math.sqrt(2 / (5 * dim)) * jax.random.normal(key, shape, jnp.float32)


def wang_init(key, shape, dim: int, num_blocks: int) -> Array:
    """Normal with std ``2 / num_blocks / sqrt(dim)`` (the package's ``wang_init_``)."""
    std = 2 / num_blocks / math.sqrt(dim)
    return std * jax.random.normal(key, shape, jnp.float32)


def proj_up_dim(embedding_dim: int, factor: float, multiple_of: int = 64) -> int:
    """The package's up-projection width: ``factor * embedding_dim`` rounded up to a
    multiple of ``multiple_of`` (``UpProjConfigMixin``)."""
    return int(math.ceil(factor * embedding_dim / multiple_of) * multiple_of)


# ------------------------------------------------------------------------- dense


def dense_init(key, n_in: int, n_out: int, bias: bool, std_fn) -> dict:
    """``{"w": std_fn(key, (n_in, n_out)), "b": zeros}`` (no ``b`` without bias)."""
    p = {"w": std_fn(key, (n_in, n_out))}
    if bias:
        p["b"] = jnp.zeros((n_out,), jnp.float32)
    return p


def affine(p: dict, x: Array) -> Array:
    """``x @ p["w"] (+ p["b"])`` for ``x (..., E_in)``."""
    y = linear(x, p["w"])
    return y if "b" not in p else y + expand(p["b"], y.ndim)


# ------------------------------------------------------------------------- norms


def norm_init(size: int, weight: bool = True, bias: bool = False) -> dict:
    """Residual weight zero (scale 1) and bias zero, as the package initialises."""
    p = {}
    if weight:
        p["weight"] = jnp.zeros((size,), jnp.float32)
    if bias:
        p["bias"] = jnp.zeros((size,), jnp.float32)
    return p


def _normalise(x: Array, eps: float) -> Array:
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * lax.rsqrt(var + eps)


def _scale_shift(p: dict, y: Array) -> Array:
    if "weight" in p:
        y = y * (1.0 + expand(p["weight"], y.ndim))
    if "bias" in p:
        y = y + expand(p["bias"], y.ndim)
    return y


def layer_norm(p: dict, x: Array, eps: float = NORM_EPS) -> Array:
    """Layer norm over the last axis of ``x (..., E)``, scale ``1 + weight``."""
    return _scale_shift(p, _normalise(x, eps))


def head_norm(p: dict, x: Array, num_heads: int, eps: float = NORM_EPS) -> Array:
    """Group norm with one group per head: ``x (..., E)``, ``E = num_heads * DH``,
    each head's ``DH`` features normalised on their own, then scale ``1 + weight``
    and ``bias`` per feature (the package's ``MultiHeadLayerNorm``)."""
    xh = x.reshape(*x.shape[:-1], num_heads, x.shape[-1] // num_heads)
    return _scale_shift(p, _normalise(xh, eps).reshape(x.shape))


# ------------------------------------------------------------ causal convolution


def conv_init(key, kernel_size: int, features: int, bias: bool = True) -> dict:
    """PyTorch's ``Conv1d`` default for a depthwise kernel: uniform in
    ``+-1/sqrt(W)``, weight and bias."""
    kw, kb = jax.random.split(key)
    bound = 1 / math.sqrt(kernel_size)
    uniform = lambda k, s: jax.random.uniform(k, s, jnp.float32, -bound, bound)
    p = {"w": uniform(kw, (kernel_size, features))}
    if bias:
        p["b"] = uniform(kb, (features,))
    return p


def causal_conv(p: dict, xs: Array, window: Array, lengths: Array | None = None):
    """Causal depthwise convolution over time.

    Args:
      p: ``{"w": (W, E), "b": (E,)}`` (``b`` optional).
      xs: ``(*B, T, E)``.
      window: ``(*B, W-1, E)``, the inputs before ``xs`` (zeros at the start).
      lengths: ``(*B,)`` valid steps of each sequence, or ``None`` (all ``T``).

    Returns:
      ``(ys (*B, T, E), window)``: the window after the last valid step.
    """
    width = p["w"].shape[0]
    full = jnp.concatenate([window.astype(xs.dtype), xs], axis=-2)
    T = xs.shape[-2]
    ys = sum(full[..., j : j + T, :] * expand(p["w"][j], xs.ndim) for j in range(width))
    if "b" in p:
        ys = ys + expand(p["b"], xs.ndim)
    return ys, last_window(full, width - 1, T, lengths)


def last_window(full: Array, size: int, T: int, lengths: Array | None) -> Array:
    """The ``size`` rows of ``full (*B, size + T, E)`` before step ``lengths`` of
    the ``T`` last ones (the rows ending at the last valid step)."""
    if lengths is None or size == 0:
        return full[..., full.shape[-2] - size :, :]
    offsets = jnp.arange(size, dtype=lengths.dtype)
    idx = lengths[..., None] + offsets.reshape((1,) * lengths.ndim + (size,))
    return jnp.take_along_axis(full, idx[..., None], axis=-2)


# ---------------------------------------------------------------------- dropout


def dropout(x: Array, rate: float, key) -> Array:
    """Inverted dropout (``key`` ``None``: the identity)."""
    if key is None or not rate:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype))


# -------------------------------------------------------------- the gated FFN


@dataclasses.dataclass(frozen=True)
class GatedFFN:
    """The gated feed-forward network: ``y = (act(x W_g) * (x W_u)) W_d``.

    Parameters ``{"proj_up": dense (E, 2F), "proj_down": dense (F, E)}``, the up
    projection's columns ``[:F]`` the gate ``x W_g`` and ``[F:]`` ``x W_u``.

    Attributes:
      embedding_dim: ``E``.
      hidden_dim: ``F`` (see `proj_up_dim`).
      activation: one of ``ACTIVATIONS`` (``"gelu"`` is the exact one).
      bias: biases on both projections.
      dropout: rate on the output (training only).
      num_blocks: blocks of the model (the down projection's initial scale).
    """

    embedding_dim: int
    hidden_dim: int
    activation: str = "gelu"
    bias: bool = False
    dropout: float = 0.0
    num_blocks: int = 1

    def __post_init__(self):
        check_positive_int(self.embedding_dim, "embedding_dim")
        check_positive_int(self.hidden_dim, "hidden_dim")
        check_positive_int(self.num_blocks, "num_blocks")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation: expected one of {sorted(ACTIVATIONS)}, got "
                f"{self.activation!r}"
            )
        _validate.check_rate(self.dropout, "dropout")

    def init(self, key) -> dict:
        E, F = self.embedding_dim, self.hidden_dim
        ku, kd = jax.random.split(key)
        return {
            "proj_up": dense_init(
                ku, E, 2 * F, self.bias, lambda k, s: small_init(k, s, E)
            ),
            "proj_down": dense_init(
                kd, F, E, self.bias, lambda k, s: wang_init(k, s, E, self.num_blocks)
            ),
        }

    def apply(self, params, x: Array, key=None) -> Array:
        """``x (..., E) -> (..., E)``; dropout with ``key`` (``None``: none)."""
        up = affine(params["proj_up"], x)
        gate, value = jnp.split(up, 2, axis=-1)
        y = affine(params["proj_down"], ACTIVATIONS[self.activation](gate) * value)
        return dropout(y, self.dropout, key)


# ------------------------------------------------------------------- running

MLSTM_IMPLS = ("auto", "scan", "parallel", "chunkwise")


class Run(NamedTuple):
    """How a model runs, checked once by `apply_model` and handed down.

    Attributes:
      lengths: ``(*B,)`` valid steps (right padding) or ``None``.
      slstm_impl: the sLSTM recurrence's ``impl`` (``rnnjax.kernels.select``).
      unroll: its steps per loop iteration.
      mlstm_impl: the mLSTM core's form (``rnnjax.kernels.mlstm.mlstm_sequence``).
      mlstm_chunk_size: its chunk size.
    """

    lengths: Array | None
    slstm_impl: Any
    unroll: int
    mlstm_impl: str
    mlstm_chunk_size: int

    def valid(self, num_steps: int) -> Array | None:
        """``(*B, T)`` booleans, or ``None``."""
        if self.lengths is None:
            return None
        steps = jnp.arange(num_steps).reshape((1,) * self.lengths.ndim + (-1,))
        return steps < self.lengths[..., None]


def apply_model(
    model,
    params,
    xs,
    *,
    carry=None,
    seq_lengths=None,
    key=None,
    training: bool = False,
    options: UnrollOptions | None = None,
    mlstm_impl: str | None = None,
    mlstm_chunk_size: int = 64,
):
    """Runs an xLSTM layer, block or stack (``model``) over ``xs (*B, T, E)``.

    Args:
      model: an `SLSTMLayer`, `MLSTMLayer`, ``XLSTMBlock`` or ``XLSTMStack``.
      params: from ``model.init``.
      xs: ``(*B, T, E)``, batch first.
      carry: from ``model.initial_carry`` or a previous call (zeros when ``None``).
      seq_lengths: ``(*B,)`` integers, right padding: padded outputs are zero and
        the carry is the one after each sequence's last valid step.
      key: PRNG key for dropout (needed when ``training`` and a rate is set).
      training: apply dropout.
      options: `rnnjax.UnrollOptions`: ``impl`` and ``unroll`` of the sLSTM
        recurrence (``"parallel"`` and ``"chunkwise"`` are the mLSTM's and leave
        the sLSTM on ``"auto"``); ``impl`` also picks the mLSTM core's form
        unless ``mlstm_impl`` is given: ``"scan"``, ``"parallel"`` and
        ``"chunkwise"`` run that form, any other ``"auto"``. ``remat`` is not
        supported here (wrap the call in ``jax.checkpoint``).
      mlstm_impl: the mLSTM core's form, ``"auto"`` (chunkwise; the parallel
        form when ``T <= mlstm_chunk_size``), ``"scan"``, ``"parallel"`` or
        ``"chunkwise"``; ``None``: from ``options.impl``.
      mlstm_chunk_size: the chunkwise form's chunk size.

    Returns:
      ``(carry, ys (*B, T, E))``.
    """
    options = check_options(options)
    if options.remat is not None:
        raise ValueError(
            f"options: remat is not supported by the xLSTM models, got "
            f"remat={options.remat!r} (wrap the call in jax.checkpoint instead)"
        )
    impl = str(options.impl)  # an Impl (a str enum) or a Pallas value
    mlstm_forms = ("scan", "parallel", "chunkwise")
    if mlstm_impl is None:
        mlstm_impl = impl if impl in mlstm_forms else "auto"
    if mlstm_impl not in MLSTM_IMPLS:
        raise ValueError(
            f"mlstm_impl: expected one of {MLSTM_IMPLS} or None, got {mlstm_impl!r}"
        )
    check_positive_int(mlstm_chunk_size, "mlstm_chunk_size")
    num_steps, batch_shape, _ = _validate.check_xs(xs, time_major=False)
    E = model.embedding_dim
    if xs.shape[-1] != E:
        raise ValueError(
            f"xs: expected {E} features (embedding_dim) in the last axis, got shape "
            f"{xs.shape}"
        )
    check_params(model, params)
    # float32 state (float64 for float64 inputs, so that a float64 run is one)
    expected = model.initial_carry(batch_shape, jnp.promote_types(xs.dtype, "float32"))
    if carry is None:
        carry = expected
    else:
        _validate.check_carry(carry, expected)
    lengths = _validate.check_lengths_arg(seq_lengths, batch_shape, num_steps)
    check_dropout_key(key, training, model.has_dropout, "model")
    slstm_impl = "auto" if impl in mlstm_forms[1:] else options.impl
    run = Run(lengths, slstm_impl, options.unroll, mlstm_impl, mlstm_chunk_size)
    valid = run.valid(num_steps)
    if valid is not None:  # padded inputs zeroed once (no NaN from padding)
        xs = jnp.where(valid[..., None], xs, jnp.zeros((), xs.dtype))
    carry = match_varying_axes(carry, (params, xs))
    carry, ys = model.run(params, xs, carry, run, key if training else None)
    if valid is not None:
        ys = jnp.where(valid[..., None], ys, jnp.zeros((), ys.dtype))
    return carry, ys


def check_params(model, params) -> None:
    """Raises ValueError naming ``params`` when its structure or shapes are not
    ``model.init``'s."""
    expected = jax.eval_shape(model.init, jax.random.key(0))
    shapes = lambda t: jax.tree.map(lambda a: tuple(jnp.shape(a)), t)
    try:
        same = shapes(params) == shapes(expected)
    except (TypeError, ValueError):
        same = False
    if not same:
        raise ValueError(
            f"params: expected the pytree of {type(model).__name__}.init "
            f"{shapes(expected)}, got {shapes(params)}"
        )

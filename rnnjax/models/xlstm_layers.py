"""The sLSTM and mLSTM layers of xLSTM (Beck et al. 2024), as the ``xlstm`` package
(2.0.6) defines them (``blocks/slstm/layer.py``, ``blocks/mlstm/layer.py``).

Shapes: ``*B`` batch, ``T`` time, ``E`` the embedding (a layer's input and output
features); ``D`` the mLSTM's inner width, ``W`` the convolution's kernel size; the
heads are named in words (``NH`` heads of ``DH`` features).

**sLSTM layer** (`SLSTMLayer`, ``H = E``), for ``x (*B, T, E)``:

    xc = swish(causal_conv(x))          (xc = x when conv_kernel_size == 0)
    zs = [xc W_i, xc W_f, x W_z, x W_o]      head-wise (block-diagonal) maps
    h  = sLSTM(zs)                       rnnjax.slstm(E, num_heads=NH) over time
    y  = head_norm(dropout(h))

Parameters: ``conv {"w": (W, E), "b": (E,)}`` (absent when ``W == 0``),
``w_i, w_f, w_z, w_o (NH, DH, DH)`` (head-wise, see ``headwise_linear``), the
cell's ``w_h (NH, DH, 4*DH)`` and ``b (4E,)`` (gate-major ``i, f, z, o``, each
head-major), ``norm {"weight": (E,)}`` (scale ``1 + weight``; empty without
``group_norm_weight``).

**mLSTM layer** (`MLSTMLayer`), for ``x (*B, T, E)``:

    [xm, z] = x W_up                     (D each)
    xc = swish(causal_conv(xm))          (xc = swish(xm) when conv_kernel_size == 0)
    q, k = xc W_q, xc W_k;  v = xm W_v   head-wise with blocks of qkv_blocksize
    i~, f~ = [q, k, v] W_i + b_i, [q, k, v] W_f + b_f      (NH each)
    h  = mLSTM core (rnnjax.kernels.mlstm; k / sqrt(DH)), per head
    y  = dropout(((head_norm(h) + skip * xc) * swish(z)) W_down)

Parameters: ``proj_up {"w": (E, 2D), "b"}``, ``conv``, ``q, k, v {"w": (D/bs, bs,
bs), "b": (D,)}``, ``igate, fgate {"w": (3D, NH), "b": (NH,)}``, ``norm
{"weight": (D,)}``, ``skip (D,)``, ``proj_down {"w": (D, E), "b"}`` (no ``b``
anywhere without ``bias``, except the gates').

A layer's carry is a `LayerState`: the convolution's window (the last ``W-1`` inputs
of the convolution) and the recurrent state (``SLSTMState`` or ``MLSTMState``), so
that running ``xs[:, :t]`` then ``xs[:, t:]`` from the returned carry equals one run.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rnnjax import _validate, kernels
from rnnjax.cells.base import check_positive_int, expand
from rnnjax.cells.mlstm import MLSTMState
from rnnjax.cells.slstm import headwise_linear, slstm
from rnnjax.kernels.mlstm import mlstm_sequence
from rnnjax.models.xlstm_parts import (
    Run,
    affine,
    apply_model,
    causal_conv,
    conv_init,
    dense_init,
    dropout,
    head_norm,
    norm_init,
    small_init,
    wang_init,
)

Array = jax.Array

FORGET_GATES = ("sigmoid", "exp")


class LayerState(NamedTuple):
    """A layer's carry: ``conv (*B, W-1, E or D)``, the convolution's window (zero
    width without one), and ``cell``, the recurrent state."""

    conv: Array
    cell: Any


def headwise_affine(p: dict, x: Array) -> Array:
    """``headwise_linear(x, p["w"])`` plus ``p["b"]`` when present."""
    y = headwise_linear(x, p["w"])
    return y if "b" not in p else y + expand(p["b"], y.ndim)


def conv_stage(p: dict, kernel_size: int, xs: Array, window: Array, lengths):
    """``(causal_conv(p["conv"], xs), window after it)`` (no activation); ``xs``
    and the unchanged (empty) window without a kernel."""
    if kernel_size == 0:
        return xs, window
    return causal_conv(p["conv"], xs, window, lengths)


def _check_common(layer) -> None:
    check_positive_int(layer.embedding_dim, "embedding_dim")
    check_positive_int(layer.num_heads, "num_heads")
    check_positive_int(layer.num_blocks, "num_blocks")
    k = layer.conv_kernel_size
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"conv_kernel_size: expected an int >= 0, got {k!r}")
    if layer.forget_gate not in FORGET_GATES:
        raise ValueError(
            f"forget_gate: expected one of {FORGET_GATES}, got {layer.forget_gate!r}"
        )
    _validate.check_rate(layer.dropout, "dropout")


# ------------------------------------------------------------------------ sLSTM


@dataclasses.dataclass(frozen=True)
class SLSTMLayer:
    """The sLSTM layer (equations and parameters in the module docstring).

    Attributes:
      embedding_dim: ``E``, also the cell's hidden size.
      num_heads: ``NH``, dividing ``E``.
      conv_kernel_size: ``W``; 0 for no convolution (``x`` feeds the i, f gates).
      group_norm_weight: the head norm has a (residual) weight.
      forget_gate: ``"sigmoid"`` (the package's) or ``"exp"``.
      dropout: rate on the cell's outputs before the norm (training only).
      block_index, num_blocks: the block's place in a stack; they set the
        forget-gate bias at init only (the package's "powerlaw_blockdependent").
    """

    embedding_dim: int
    num_heads: int = 4
    conv_kernel_size: int = 4
    group_norm_weight: bool = True
    forget_gate: str = "sigmoid"
    dropout: float = 0.0
    block_index: int = 0
    num_blocks: int = 1

    def __post_init__(self):
        _check_common(self)
        if self.embedding_dim % self.num_heads:
            raise ValueError(
                f"num_heads: expected a divisor of embedding_dim={self.embedding_dim}, "
                f"got {self.num_heads}"
            )
        self.cell  # noqa: B018  (the cell checks block_index and num_blocks)

    @property
    def head_dim(self) -> int:
        return self.embedding_dim // self.num_heads

    @property
    def cell(self):
        """The recurrence: `rnnjax.slstm` (its input weights ``w_x`` unused)."""
        return slstm(
            self.embedding_dim,
            num_heads=self.num_heads,
            forget_gate=self.forget_gate,
            block_index=self.block_index,
            num_blocks=self.num_blocks,
        )

    def init(self, key) -> dict:
        """The package's initialisation: gates ``small_init``, PyTorch's default
        for the convolution, norm weight zero (scale 1), and the cell's (`slstm`:
        recurrent weights zero, biases zero but the forget gate's power law)."""
        E, NH, DH = self.embedding_dim, self.num_heads, self.head_dim
        keys = jax.random.split(key, 6)
        p = {}
        if self.conv_kernel_size:
            p["conv"] = conv_init(keys[4], self.conv_kernel_size, E)
        for name, k in zip(("w_i", "w_f", "w_z", "w_o"), keys[:4], strict=True):
            p[name] = small_init(k, (NH, DH, DH), E)
        cell_params = self.cell.init(keys[5], E)
        p["w_h"], p["b"] = cell_params["w_h"], cell_params["b"]
        p["norm"] = norm_init(E, weight=self.group_norm_weight)
        return p

    def initial_carry(self, batch_shape=(), dtype=jnp.float32) -> LayerState:
        window = max(self.conv_kernel_size - 1, 0)
        return LayerState(
            jnp.zeros((*batch_shape, window, self.embedding_dim), dtype),
            self.cell.initial_carry(tuple(batch_shape), dtype),
        )

    @property
    def has_dropout(self) -> bool:
        return bool(self.dropout)

    def run(self, params, xs, carry: LayerState, run: Run, key=None):
        """Unchecked `apply` (``key``: dropout, ``None`` for none)."""
        x_conv, window = conv_stage(
            params, self.conv_kernel_size, xs, carry.conv, run.lengths
        )
        if self.conv_kernel_size:
            x_conv = jax.nn.silu(x_conv)
        zs = jnp.concatenate(
            [
                headwise_linear(x_conv, params["w_i"]),
                headwise_linear(x_conv, params["w_f"]),
                headwise_linear(xs, params["w_z"]),
                headwise_linear(xs, params["w_o"]),
            ],
            axis=-1,
        )
        valid = run.valid(xs.shape[-2])
        inputs = kernels.StepInputs(
            jnp.moveaxis(zs, -2, 0),
            params["b"],
            None if valid is None else jnp.moveaxis(valid, -1, 0),
            None,
            None,
        )
        cell = self.cell
        recurrence = kernels.select(cell, run.slstm_impl)
        state, hs = recurrence(
            cell,
            {"w_h": params["w_h"], "b": params["b"]},
            carry.cell,
            inputs,
            unroll=run.unroll,
        )
        hs = dropout(jnp.moveaxis(hs, 0, -2), self.dropout, key)
        return LayerState(window, state), head_norm(params["norm"], hs, self.num_heads)

    def apply(self, params, xs, **kwargs):
        """Runs the layer over ``xs (*B, T, E)``; returns ``(carry, ys (*B, T, E))``.
        Keyword arguments as `apply_model`."""
        return apply_model(self, params, xs, **kwargs)


# ------------------------------------------------------------------------ mLSTM


@dataclasses.dataclass(frozen=True)
class MLSTMLayer:
    """The mLSTM layer (equations and parameters in the module docstring).

    Attributes:
      embedding_dim: ``E``.
      inner_dim: ``D``, the up-projection's width (the package rounds
        ``proj_factor * E`` up to a multiple of 64: ``xlstm_parts.proj_up_dim``).
      num_heads: ``NH``, dividing ``D``.
      conv_kernel_size: ``W``; 0 for none (then ``xc = swish(xm)``).
      qkv_blocksize: the block size of the head-wise q, k, v maps (dividing ``D``).
      bias: biases on the up, q, k, v and down projections.
      forget_gate: ``"sigmoid"`` (the package's) or ``"exp"``.
      dropout: rate on the output (training only).
      num_blocks: blocks of the model (the down projection's initial scale).
      eps: the core's denominator epsilon.
    """

    embedding_dim: int
    inner_dim: int
    num_heads: int = 4
    conv_kernel_size: int = 4
    qkv_blocksize: int = 4
    bias: bool = False
    forget_gate: str = "sigmoid"
    dropout: float = 0.0
    num_blocks: int = 1
    eps: float = 1e-6

    def __post_init__(self):
        _check_common(self)
        check_positive_int(self.inner_dim, "inner_dim")
        check_positive_int(self.qkv_blocksize, "qkv_blocksize")
        for name in ("num_heads", "qkv_blocksize"):
            if self.inner_dim % getattr(self, name):
                raise ValueError(
                    f"{name}: expected a divisor of inner_dim={self.inner_dim}, got "
                    f"{getattr(self, name)}"
                )

    @property
    def head_dim(self) -> int:
        return self.inner_dim // self.num_heads

    @property
    def has_dropout(self) -> bool:
        return bool(self.dropout)

    def init(self, key) -> dict:
        """The package's initialisation: up and q, k, v maps ``small_init`` (scale
        of ``E``), down map ``wang_init``, gate weights zero, input-gate bias
        normal(0, 0.1), forget-gate bias ``linspace(3, 6, NH)``, skip one, norm
        weight zero, PyTorch's default for the convolution."""
        E, D, NH, bs = (
            self.embedding_dim,
            self.inner_dim,
            self.num_heads,
            self.qkv_blocksize,
        )
        keys = jax.random.split(key, 7)
        small = lambda k, s: small_init(k, s, E)
        p = {"proj_up": dense_init(keys[0], E, 2 * D, self.bias, small)}
        if self.conv_kernel_size:
            p["conv"] = conv_init(keys[1], self.conv_kernel_size, D)
        for name, k in zip("qkv", keys[2:5], strict=True):
            p[name] = {"w": small(k, (D // bs, bs, bs))}
            if self.bias:
                p[name]["b"] = jnp.zeros((D,), jnp.float32)
        p["igate"] = {
            "w": jnp.zeros((3 * D, NH), jnp.float32),
            "b": 0.1 * jax.random.normal(keys[5], (NH,), jnp.float32),
        }
        p["fgate"] = {
            "w": jnp.zeros((3 * D, NH), jnp.float32),
            "b": jnp.linspace(3.0, 6.0, NH, dtype=jnp.float32),
        }
        p["norm"] = norm_init(D)
        p["skip"] = jnp.ones((D,), jnp.float32)
        p["proj_down"] = dense_init(
            keys[6], D, E, self.bias, lambda k, s: wang_init(k, s, E, self.num_blocks)
        )
        return p

    def initial_carry(self, batch_shape=(), dtype=jnp.float32) -> LayerState:
        B, NH, DH = tuple(batch_shape), self.num_heads, self.head_dim
        window = max(self.conv_kernel_size - 1, 0)
        return LayerState(
            jnp.zeros((*B, window, self.inner_dim), dtype),
            MLSTMState(
                jnp.zeros((*B, NH, DH, DH), dtype),
                jnp.zeros((*B, NH, DH), dtype),
                jnp.zeros((*B, NH), dtype),
            ),
        )

    def run(self, params, xs, carry: LayerState, run: Run, key=None):
        """Unchecked `apply` (``key``: dropout, ``None`` for none)."""
        NH, DH = self.num_heads, self.head_dim
        x_m, z = jnp.split(affine(params["proj_up"], xs), 2, axis=-1)
        x_conv, window = conv_stage(
            params, self.conv_kernel_size, x_m, carry.conv, run.lengths
        )
        x_act = jax.nn.silu(x_conv)
        q = headwise_affine(params["q"], x_act)
        k = headwise_affine(params["k"], x_act)
        v = headwise_affine(params["v"], x_m)
        qkv = jnp.concatenate([q, k, v], axis=-1)
        i_pre = jnp.moveaxis(affine(params["igate"], qkv), -1, -2)  # (*B, NH, T)
        f_pre = jnp.moveaxis(affine(params["fgate"], qkv), -1, -2)
        heads = lambda a: jnp.moveaxis(a.reshape(*a.shape[:-1], NH, DH), -2, -3)
        state, h = mlstm_sequence(
            heads(q),
            heads(k) * (1.0 / math.sqrt(DH)),
            heads(v),
            i_pre,
            f_pre,
            carry.cell,
            valid=run.valid(xs.shape[-2]),
            forget_gate=self.forget_gate,
            eps=self.eps,
            impl=run.mlstm_impl,
            chunk_size=run.mlstm_chunk_size,
        )
        h = jnp.moveaxis(h, -3, -2)
        h = h.reshape(*h.shape[:-2], NH * DH)
        h = head_norm(params["norm"], h, NH)
        h = (h + expand(params["skip"], h.ndim) * x_act) * jax.nn.silu(z)
        y = dropout(affine(params["proj_down"], h), self.dropout, key)
        return LayerState(window, state), y

    def apply(self, params, xs, **kwargs):
        """Runs the layer over ``xs (*B, T, E)``; returns ``(carry, ys (*B, T, E))``.
        Keyword arguments as `apply_model`."""
        return apply_model(self, params, xs, **kwargs)

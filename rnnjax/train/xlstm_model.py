"""The xLSTM model of ``rnnjax train``: an input encoding, an xLSTM block stack
(`rnnjax.models`), a linear read-out, for a config whose ``model`` group is
`rnnjax.configs.base.xlstm_model`'s (``model.kind = "xlstm"``).

Inputs are ``(B, T)`` int token ids (tasks whose ``sizes`` say ``one_hot``: an
embedding table) or ``(B, T, I)`` floats (a linear projection to the embedding);
outputs are ``(B, T, O)``. Shapes: ``B`` batch, ``T`` time, ``I`` input features
or vocabulary, ``E`` the stack's embedding dim, ``O`` outputs.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

import rnnjax
from rnnjax import models
from rnnjax.cells import base
from rnnjax.kernels import IMPLS
from rnnjax.train.tasks.base import require

__all__ = ["XLSTMModel", "check", "make_xlstm_model", "slstm_indices"]


def slstm_indices(spec, num_blocks: int) -> tuple[int, ...]:
    """The sLSTM blocks of ``model.xlstm.slstm_at``: ``""`` none, ``"all"`` every
    block, the paper's ratio ``"m:s"`` (in each group of ``m + s`` blocks the last
    ``s``: ``"1:1"`` of 2 blocks is ``(1,)``, ``"7:1"`` of 16 is ``(7, 15)``), or
    comma-separated 0-based indices below ``num_blocks`` (``"1"``, ``"1,3"``);
    ``ValueError`` naming the key otherwise."""
    text = str(spec).strip()
    if text == "":
        return ()
    if text == "all":
        return tuple(range(num_blocks))
    m, _, s = text.partition(":")
    if m.isdigit() and s.isdigit() and int(s) >= 1:
        group = int(m) + int(s)
        return tuple(i for i in range(num_blocks) if i % group >= int(m))
    try:
        at = tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        at = None
    if at is None or at[0] < 0 or at[-1] >= num_blocks:
        raise ValueError(
            f"config.model.xlstm.slstm_at: expected '', 'all', a ratio 'm:s' or "
            f"comma-separated block indices in [0, {num_blocks}) "
            f"(model.xlstm.num_blocks={num_blocks}), got {spec!r}"
        )
    return at


def check(config) -> None:
    """Raises ``ValueError`` naming the key for an xLSTM ``model`` group value the
    stack cannot take (the stack's own checks run when it is built)."""
    x = config.model.xlstm
    for key in ("embedding_dim", "num_blocks", "num_heads"):
        require(config, f"model.xlstm.{key}", x[key] >= 1, "a positive int")
    require(config, "model.xlstm.conv_kernel_size", x.conv_kernel_size >= 0, ">= 0")
    for key in ("mlstm_proj_factor", "ffn_proj_factor"):
        require(config, f"model.xlstm.{key}", x[key] > 0, "a float > 0")
    require(config, "model.xlstm.dropout", 0 <= x.dropout < 1, "a rate in [0, 1)")
    require(config, "model.impl", config.model.impl in IMPLS, f"one of {IMPLS}")
    slstm_indices(x.slstm_at, x.num_blocks)


@dataclasses.dataclass(frozen=True)
class XLSTMModel:
    """An xLSTM stack between an input encoding and a linear read-out.

    Params: ``{"embed": {"table": (I, E)}`` (``one_hot``: token ids) or
    ``{"w": (I, E), "b": (E,)}`` (float inputs), ``"xlstm"``: the stack's params,
    ``"out": {"w": (E, O), "b": (O,)}}``. `init` and `apply` have the signatures
    of `rnnjax.train.model.Model`'s.
    """

    stack: Any
    input_size: int
    output_size: int
    one_hot: bool
    impl: str

    @property
    def embedding_dim(self) -> int:
        return self.stack.embedding_dim

    def init(self, key):
        """The parameters, drawn from ``key``; the embedding table as the
        ``xlstm`` package's language model draws it (normal, std
        ``sqrt(2 / (5 E))``)."""
        k_in, k_stack, k_out = jax.random.split(key, 3)
        e = self.embedding_dim
        if self.one_hot:
            std = math.sqrt(2.0 / (5.0 * e))
            embed = {"table": std * jax.random.normal(k_in, (self.input_size, e))}
        else:
            embed = base.dense_params(k_in, self.input_size, e)
        return {
            "embed": embed,
            "xlstm": self.stack.init(k_stack),
            "out": base.dense_params(k_out, e, self.output_size),
        }

    def apply(self, params, inputs, *, seq_lengths=None, carry=None, key=None):
        """``(carry, outputs (B, T, O))``; dropout is on when ``key`` is given."""
        if self.one_hot:
            xs = jnp.take(params["embed"]["table"], inputs, axis=0)
        else:
            xs = base.dense(params["embed"], inputs)
        drop = key is not None and self.stack.has_dropout
        carry, ys = self.stack.apply(
            params["xlstm"],
            xs,
            carry=carry,
            seq_lengths=seq_lengths,
            key=key if drop else None,
            training=drop,
            options=rnnjax.UnrollOptions(impl=self.impl),
        )
        return carry, base.dense(params["out"], ys)


def make_xlstm_model(model_config, input_size: int, output_size: int, one_hot: bool):
    """The `XLSTMModel` of an xLSTM ``config.model`` for the task's sizes: the
    stack of `rnnjax.models.xlstm_stack` with ``num_heads`` and
    ``conv_kernel_size`` for both block kinds, the rest at the factory's defaults
    (the ``xlstm`` package's)."""
    x = model_config.xlstm
    stack = models.xlstm_stack(
        x.embedding_dim,
        x.num_blocks,
        slstm_at=slstm_indices(x.slstm_at, x.num_blocks),
        mlstm_heads=x.num_heads,
        slstm_heads=x.num_heads,
        mlstm_conv_kernel_size=x.conv_kernel_size,
        slstm_conv_kernel_size=x.conv_kernel_size,
        mlstm_proj_factor=x.mlstm_proj_factor,
        ffn_proj_factor=x.ffn_proj_factor,
        dropout=x.dropout,
    )
    return XLSTMModel(stack, input_size, output_size, one_hot, model_config.impl)

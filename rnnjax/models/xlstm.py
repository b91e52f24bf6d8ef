"""xLSTM blocks and the residual stack of them (Beck et al. 2024), as the ``xlstm``
package (2.0.6) builds them (``xLSTMBlock``, ``xLSTMBlockStack``).

Shapes: ``*B`` batch, ``T`` time, ``E`` the embedding.

A block (`XLSTMBlock`) is pre-norm and residual:

    x = x + layer(LN(x))               an sLSTM or mLSTM layer (models.xlstm_layers)
    x = x + ffn(LN(x))                 when the block has a gated FFN (sLSTM blocks)

with ``LN`` the package's layer norm (no bias, scale ``1 + weight``, epsilon 1e-5).
Parameters ``{"norm": {"weight": (E,)}, "layer": ..., "ffn_norm": ..., "ffn": ...}``
(the last two only with an FFN); carry: the layer's ``LayerState``.

The stack (`XLSTMStack`, built by `xlstm_stack`) runs its blocks in order, then a
final layer norm (``post_norm``). Parameters ``{"blocks": (block params, ...),
"post_norm": {"weight": (E,)}}``; carry: a tuple of the blocks' ``LayerState``.

Every model has ``init(key) -> params``, ``initial_carry(batch_shape=(),
dtype=float32)`` and ``apply(params, xs, *, carry=None, seq_lengths=None, key=None,
training=False, options=None, mlstm_impl=None, mlstm_chunk_size=64) -> (carry,
ys)`` (``models.xlstm_parts.apply_model``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from rnnjax.cells.base import check_positive_int
from rnnjax.models.xlstm_layers import MLSTMLayer, SLSTMLayer
from rnnjax.models.xlstm_parts import (
    GatedFFN,
    Run,
    apply_model,
    layer_norm,
    norm_init,
    proj_up_dim,
)


@dataclasses.dataclass(frozen=True)
class XLSTMBlock:
    """A pre-norm residual block around an sLSTM or mLSTM layer, with an optional
    gated feed-forward network (module docstring).

    Attributes:
      layer: an `SLSTMLayer` or `MLSTMLayer`.
      ffn: a `GatedFFN` of the same ``embedding_dim``, or ``None``.
    """

    layer: SLSTMLayer | MLSTMLayer
    ffn: GatedFFN | None = None

    def __post_init__(self):
        if not isinstance(self.layer, SLSTMLayer | MLSTMLayer):
            raise TypeError(
                f"layer: expected an SLSTMLayer or MLSTMLayer, got "
                f"{type(self.layer).__name__}"
            )
        if self.ffn is not None:
            if not isinstance(self.ffn, GatedFFN):
                raise TypeError(
                    f"ffn: expected a GatedFFN or None, got {type(self.ffn).__name__}"
                )
            if self.ffn.embedding_dim != self.layer.embedding_dim:
                raise ValueError(
                    f"ffn: expected embedding_dim={self.layer.embedding_dim} (the "
                    f"layer's), got {self.ffn.embedding_dim}"
                )

    @property
    def embedding_dim(self) -> int:
        return self.layer.embedding_dim

    @property
    def kind(self) -> str:
        """``"slstm"`` or ``"mlstm"``."""
        return "slstm" if isinstance(self.layer, SLSTMLayer) else "mlstm"

    @property
    def has_dropout(self) -> bool:
        return self.layer.has_dropout or bool(self.ffn is not None and self.ffn.dropout)

    def init(self, key) -> dict:
        k_layer, k_ffn = jax.random.split(key)
        p = {"norm": norm_init(self.embedding_dim), "layer": self.layer.init(k_layer)}
        if self.ffn is not None:
            p["ffn_norm"] = norm_init(self.embedding_dim)
            p["ffn"] = self.ffn.init(k_ffn)
        return p

    def initial_carry(self, batch_shape=(), dtype=jnp.float32):
        return self.layer.initial_carry(batch_shape, dtype)

    def run(self, params, xs, carry, run: Run, key=None):
        """Unchecked `apply`. Dropout keys: ``fold_in(key, 0)`` the layer's,
        ``fold_in(key, 1)`` the FFN's."""
        k_layer = None if key is None else jax.random.fold_in(key, 0)
        carry, y = self.layer.run(
            params["layer"], layer_norm(params["norm"], xs), carry, run, k_layer
        )
        xs = xs + y
        if self.ffn is not None:
            k_ffn = None if key is None else jax.random.fold_in(key, 1)
            normed = layer_norm(params["ffn_norm"], xs)
            xs = xs + self.ffn.apply(params["ffn"], normed, k_ffn)
        return carry, xs

    def apply(self, params, xs, **kwargs):
        """Runs the block over ``xs (*B, T, E)``; returns ``(carry, ys (*B, T, E))``.
        Keyword arguments as ``models.xlstm_parts.apply_model``."""
        return apply_model(self, params, xs, **kwargs)


@dataclasses.dataclass(frozen=True)
class XLSTMStack:
    """xLSTM blocks in a residual stack, then a layer norm (module docstring).

    Attributes:
      blocks: the `XLSTMBlock` s, bottom first, all of one ``embedding_dim``.
      post_norm: a final layer norm (the package's ``add_post_blocks_norm``).
    """

    blocks: tuple
    post_norm: bool = True

    def __post_init__(self):
        blocks = tuple(self.blocks) if isinstance(self.blocks, Sequence) else ()
        if not blocks:
            raise ValueError(
                f"blocks: expected at least one block, got {self.blocks!r}"
            )
        for i, block in enumerate(blocks):
            if not isinstance(block, XLSTMBlock):
                raise TypeError(
                    f"blocks[{i}]: expected an XLSTMBlock, got {type(block).__name__}"
                )
            if block.embedding_dim != blocks[0].embedding_dim:
                raise ValueError(
                    f"blocks[{i}]: expected embedding_dim={blocks[0].embedding_dim} "
                    f"(blocks[0]'s), got {block.embedding_dim}"
                )
        object.__setattr__(self, "blocks", blocks)

    @property
    def embedding_dim(self) -> int:
        return self.blocks[0].embedding_dim

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def slstm_at(self) -> tuple[int, ...]:
        """Indices of the sLSTM blocks."""
        return tuple(i for i, b in enumerate(self.blocks) if b.kind == "slstm")

    @property
    def has_dropout(self) -> bool:
        return any(b.has_dropout for b in self.blocks)

    def init(self, key) -> dict:
        """Block ``i`` draws from ``fold_in(key, i)``."""
        p = {
            "blocks": tuple(
                b.init(jax.random.fold_in(key, i)) for i, b in enumerate(self.blocks)
            )
        }
        if self.post_norm:
            p["post_norm"] = norm_init(self.embedding_dim)
        return p

    def initial_carry(self, batch_shape=(), dtype=jnp.float32) -> tuple:
        return tuple(b.initial_carry(batch_shape, dtype) for b in self.blocks)

    def run(self, params, xs, carry, run: Run, key=None):
        """Unchecked `apply`; block ``i``'s dropout key is ``fold_in(key, i)``."""
        finals = []
        for i, (block, p, c) in enumerate(
            zip(self.blocks, params["blocks"], carry, strict=True)
        ):
            k = None if key is None else jax.random.fold_in(key, i)
            c, xs = block.run(p, xs, c, run, k)
            finals.append(c)
        if self.post_norm:
            xs = layer_norm(params["post_norm"], xs)
        return tuple(finals), xs

    def apply(self, params, xs, **kwargs):
        """Runs the stack over ``xs (*B, T, E)``; returns ``(carry, ys (*B, T, E))``.
        Keyword arguments as ``models.xlstm_parts.apply_model``."""
        return apply_model(self, params, xs, **kwargs)


def xlstm_stack(
    embedding_dim: int,
    num_blocks: int,
    *,
    slstm_at: Sequence[int] | str = (),
    mlstm_heads: int = 4,
    slstm_heads: int = 4,
    mlstm_conv_kernel_size: int = 4,
    slstm_conv_kernel_size: int = 4,
    qkv_blocksize: int = 4,
    mlstm_proj_factor: float = 2.0,
    ffn_proj_factor: float = 1.3,
    ffn_activation: str = "gelu",
    slstm_ffn: bool = True,
    round_proj_to: int = 64,
    bias: bool = False,
    dropout: float = 0.0,
    post_norm: bool = True,
    forget_gate: str = "sigmoid",
) -> XLSTMStack:
    """Builds an `XLSTMStack` as the package's ``xLSTMBlockStackConfig`` does.

    Args:
      embedding_dim: ``E``.
      num_blocks: blocks in the stack.
      slstm_at: indices of the sLSTM blocks (the others are mLSTM blocks),
        ``"all"``, or the paper's ratio ``"m:s"`` (xLSTM[m:s]): in each group
        of ``m + s`` consecutive blocks the last ``s`` are sLSTM blocks, so
        ``"1:1"`` with 2 blocks is ``(1,)`` and ``"7:1"`` with 16 blocks is
        ``(7, 15)``.
      mlstm_heads, slstm_heads: heads of the mLSTM and sLSTM layers.
      mlstm_conv_kernel_size, slstm_conv_kernel_size: their convolutions' kernel
        sizes (0: none).
      qkv_blocksize: block size of the mLSTM's head-wise q, k, v maps.
      mlstm_proj_factor: the mLSTM's inner width ``D`` is this times ``E``,
        rounded up to a multiple of ``round_proj_to``.
      ffn_proj_factor: the same for the sLSTM blocks' feed-forward width.
      ffn_activation: the FFN's gate activation (``GatedFFN``).
      slstm_ffn: sLSTM blocks have the gated FFN (mLSTM blocks never do, as in
        the package).
      round_proj_to: see above.
      bias: biases on the mLSTM layers' projections (the package's ``bias``).
      dropout: rate of the layers' dropout (training only).
      post_norm: a layer norm after the last block.
      forget_gate: ``"sigmoid"`` (the package's) or ``"exp"``, both cells.

    Example:

        model = rnnjax.models.xlstm_stack(64, 4, slstm_at=(1,))
        params = model.init(jax.random.key(0))
        carry, ys = model.apply(params, xs)            # xs, ys: (B, T, 64)
    """
    check_positive_int(embedding_dim, "embedding_dim")
    check_positive_int(num_blocks, "num_blocks")
    check_positive_int(round_proj_to, "round_proj_to")
    at = _slstm_positions(slstm_at, num_blocks)
    blocks = []
    for i in range(num_blocks):
        if i in at:
            layer = SLSTMLayer(
                embedding_dim,
                num_heads=slstm_heads,
                conv_kernel_size=slstm_conv_kernel_size,
                forget_gate=forget_gate,
                dropout=dropout,
                block_index=i,
                num_blocks=num_blocks,
            )
            ffn = None
            if slstm_ffn:
                ffn = GatedFFN(
                    embedding_dim,
                    proj_up_dim(embedding_dim, ffn_proj_factor, round_proj_to),
                    activation=ffn_activation,
                    num_blocks=num_blocks,
                )
            blocks.append(XLSTMBlock(layer, ffn))
        else:
            layer = MLSTMLayer(
                embedding_dim,
                proj_up_dim(embedding_dim, mlstm_proj_factor, round_proj_to),
                num_heads=mlstm_heads,
                conv_kernel_size=mlstm_conv_kernel_size,
                qkv_blocksize=qkv_blocksize,
                bias=bias,
                forget_gate=forget_gate,
                dropout=dropout,
                num_blocks=num_blocks,
            )
            blocks.append(XLSTMBlock(layer))
    return XLSTMStack(tuple(blocks), post_norm=post_norm)


_RATIO = re.compile(r"\d+:[1-9]\d*")


def _slstm_positions(slstm_at, num_blocks: int) -> frozenset:
    if slstm_at == "all":
        return frozenset(range(num_blocks))
    if isinstance(slstm_at, str) and _RATIO.fullmatch(slstm_at):
        m, s = (int(n) for n in slstm_at.split(":"))
        return frozenset(i for i in range(num_blocks) if i % (m + s) >= m)
    if isinstance(slstm_at, str) or not isinstance(slstm_at, Sequence):
        raise ValueError(
            "slstm_at: expected a sequence of block indices, 'all' or a ratio "
            f"'m:s' such as '7:1', got {slstm_at!r}"
        )
    for i in slstm_at:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < num_blocks:
            raise ValueError(
                f"slstm_at: expected indices in [0, {num_blocks}) (num_blocks), got "
                f"{tuple(slstm_at)}"
            )
    return frozenset(slstm_at)

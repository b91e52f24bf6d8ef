"""Conversion from the ``xlstm`` package (2.0.6, PyTorch) to rnnjax's xLSTM models
(``rnnjax.models.xlstm``).

The package's weights map as follows (``E`` embedding, ``D`` the mLSTM's inner
width, ``NH`` heads of ``DH``, ``W`` the kernel size):

- ``LinearHeadwiseExpand.weight (NH, Dout, Din)`` -> ``w (NH, Din, Dout)``
  (transposed per head); ``nn.Linear.weight (out, in)`` -> ``w (in, out)``;
  ``CausalConv1d``'s ``conv.weight (E, 1, W)`` -> ``w (W, E)``.
- Norms keep the package's residual weight (``scale = 1 + weight``); a norm built
  with ``residual_weight=False`` converts to ``weight - 1``.
- sLSTM layer: the package feeds its module named ``fgate`` to the input gate and
  ``igate`` to the forget gate (``i, f, z, o = fgate(xc), igate(xc), zgate(x),
  ogate(x)``), so ``w_i`` is ``fgate``'s weight and ``w_f`` is ``igate``'s. The
  cell's ``recurrent_kernel`` (external layout ``(NH, DH, 4, DH)``) is ``w_h``
  reshaped to ``(NH, DH, 4*DH)``; its ``bias (NH, 4, DH)`` is ``b`` gate-major.
- mLSTM layer: ``mlstm_cell.igate``/``fgate`` ``(NH, 3D)`` -> ``igate``/``fgate``
  ``{"w": (3D, NH), "b"}``, ``mlstm_cell.outnorm`` -> ``norm``,
  ``learnable_skip`` -> ``skip``.

torch and xlstm are imported inside `from_xlstm` only.
"""

from __future__ import annotations

from rnnjax.interop._common import f32, type_name
from rnnjax.models.xlstm import XLSTMBlock, XLSTMStack
from rnnjax.models.xlstm_layers import MLSTMLayer, SLSTMLayer
from rnnjax.models.xlstm_parts import NORM_EPS, GatedFFN


def from_xlstm(module):
    """Converts a module of the ``xlstm`` package to rnnjax.

    Args:
      module: an ``sLSTMLayer``, ``mLSTMLayer``, ``sLSTMBlock``, ``mLSTMBlock``
        (any ``xLSTMBlock``) or ``xLSTMBlockStack`` (weights are copied, as
        float32).

    Returns:
      ``(model, params)``: an `SLSTMLayer`, `MLSTMLayer`, `XLSTMBlock` or
      `XLSTMStack` and its parameters; ``model.apply(params, xs)`` returns
      ``(carry, ys)`` with ``ys`` the module's ``forward(xs)`` (in eval mode; the
      model keeps the dropout rates, applied only with ``training=True``).

    Raises:
      TypeError: ``module`` is none of those.
      ValueError: an option rnnjax's models cannot express (a non-sLSTM cell
        function, channel-mixing convolution, norm epsilon or bias, another
        feed-forward type).
    """
    from xlstm.blocks.mlstm.layer import mLSTMLayer
    from xlstm.blocks.slstm.layer import sLSTMLayer
    from xlstm.blocks.xlstm_block import xLSTMBlock
    from xlstm.xlstm_block_stack import xLSTMBlockStack

    if isinstance(module, xLSTMBlockStack):
        return _stack(module)
    if isinstance(module, xLSTMBlock):
        return _block(module)
    if isinstance(module, sLSTMLayer):
        return _slstm_layer(module)
    if isinstance(module, mLSTMLayer):
        return _mlstm_layer(module)
    raise TypeError(
        "module: expected an xlstm sLSTMLayer, mLSTMLayer, sLSTMBlock, mLSTMBlock or "
        f"xLSTMBlockStack, got {type_name(module)}"
    )


def _stack(module):
    import torch

    blocks, params = zip(*(_block(b) for b in module.blocks), strict=True)
    post_norm = not isinstance(module.post_blocks_norm, torch.nn.Identity)
    model = XLSTMStack(tuple(blocks), post_norm=post_norm)
    p = {"blocks": tuple(params)}
    if post_norm:
        p["post_norm"] = _norm(module.post_blocks_norm, "post_blocks_norm")
    return model, p


def _block(module):
    from xlstm.blocks.slstm.layer import sLSTMLayer

    cfg = module.config
    convert = _slstm_layer if isinstance(module.xlstm, sLSTMLayer) else _mlstm_layer
    layer, layer_params = convert(module.xlstm)
    p = {"norm": _norm(module.xlstm_norm, "xlstm_norm"), "layer": layer_params}
    ffn = None
    if module.ffn is not None:
        ffn, p["ffn"] = _ffn(module.ffn, _num_blocks(cfg))
        p["ffn_norm"] = _norm(module.ffn_norm, "ffn_norm")
    return XLSTMBlock(layer, ffn), p


def _num_blocks(cfg) -> int:
    return getattr(cfg, "_num_blocks", None) or 1


def _ffn(module, num_blocks):
    cfg = module.config
    if cfg.ff_type != "ffn_gated":
        raise ValueError(f"module: feed-forward type {cfg.ff_type!r} is not supported")
    model = GatedFFN(
        cfg.embedding_dim,
        cfg._proj_up_dim,
        activation=cfg.act_fn,
        bias=module.proj_up.bias is not None,
        dropout=float(cfg.dropout),
        num_blocks=num_blocks,
    )
    return model, {
        "proj_up": _linear(module.proj_up),
        "proj_down": _linear(module.proj_down),
    }


def _slstm_layer(module):
    cfg = module.config
    if cfg.function != "slstm" or cfg.num_gates != 4:
        raise ValueError(
            f"module: the sLSTM cell function {cfg.function!r} with {cfg.num_gates} "
            "gates is not supported (only 'slstm', 4 gates)"
        )
    E, NH, W = cfg.embedding_dim, cfg.num_heads, cfg.conv1d_kernel_size
    DH = E // NH
    model = SLSTMLayer(
        E,
        num_heads=NH,
        conv_kernel_size=W,
        group_norm_weight=module.group_norm.weight is not None,
        dropout=float(cfg.dropout),
        block_index=getattr(cfg, "_block_idx", None) or 0,
        num_blocks=_num_blocks(cfg),
    )
    p = {}
    if W:
        p["conv"] = _conv(module.conv1d)
    # The package's i, f = fgate(xc), igate(xc): the names are swapped.
    gates = {"w_i": "fgate", "w_f": "igate", "w_z": "zgate", "w_o": "ogate"}
    for name, gate in gates.items():
        p[name] = _headwise(getattr(module, gate))["w"]
    cell = module.slstm_cell
    p["w_h"] = f32(cell.recurrent_kernel.clone()).reshape(NH, DH, 4 * DH)
    p["b"] = f32(cell.bias.clone()).transpose(1, 0, 2).reshape(4 * E)
    p["norm"] = _norm(module.group_norm, "group_norm")
    return model, p


def _mlstm_layer(module):
    cfg = module.config
    cell = module.mlstm_cell
    E, D = cfg.embedding_dim, cfg._inner_embedding_dim
    model = MLSTMLayer(
        E,
        D,
        num_heads=cfg.num_heads,
        conv_kernel_size=cfg.conv1d_kernel_size,
        qkv_blocksize=cfg.qkv_proj_blocksize,
        bias=module.proj_up.bias is not None,
        dropout=float(cfg.dropout),
        num_blocks=_num_blocks(cfg),
    )
    p = {"proj_up": _linear(module.proj_up)}
    if cfg.conv1d_kernel_size:
        p["conv"] = _conv(module.conv1d)
    for name in "qkv":
        p[name] = _headwise(getattr(module, f"{name}_proj"))
    p["igate"] = _linear(cell.igate)
    p["fgate"] = _linear(cell.fgate)
    p["norm"] = _norm(cell.outnorm, "mlstm_cell.outnorm")
    p["skip"] = f32(module.learnable_skip)
    p["proj_down"] = _linear(module.proj_down)
    return model, p


# ------------------------------------------------------------------------ pieces


def _linear(lin) -> dict:
    p = {"w": f32(lin.weight).T}
    if lin.bias is not None:
        p["b"] = f32(lin.bias)
    return p


def _headwise(mod) -> dict:
    p = {"w": f32(mod.weight).transpose(0, 2, 1)}
    if mod.bias is not None:
        p["b"] = f32(mod.bias)
    return p


def _conv(mod) -> dict:
    if mod.config.channel_mixing:
        raise ValueError(
            "module: a channel-mixing causal convolution is not supported (only "
            "depthwise, channel_mixing=False)"
        )
    p = {"w": f32(mod.conv.weight)[:, 0, :].T}
    if mod.conv.bias is not None:
        p["b"] = f32(mod.conv.bias)
    return p


def _norm(ln, where: str) -> dict:
    if ln.bias is not None:
        raise ValueError(f"module: {where} has a bias, which is not supported")
    if abs(ln.eps - NORM_EPS) > 1e-12:
        raise ValueError(
            f"module: {where} has eps={ln.eps}; only {NORM_EPS} is supported"
        )
    if ln.weight is None:
        return {}
    w = f32(ln.weight)
    return {"weight": w if ln.residual_weight else w - 1.0}

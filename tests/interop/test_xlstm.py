"""Parity with the ``xlstm`` package (2.0.6, PyTorch, CPU): outputs and input
gradients of its sLSTM and mLSTM layers, blocks and a block stack against their
``rnnjax.interop.from_xlstm`` conversion, with random weights.

The package's sLSTM runs its pure-PyTorch ``vanilla`` backend; its mLSTM layer runs
the parallel form (``parallel_stabilized_simple``), the only one 2.0.6 has. The
oracle is the package in float64; rnnjax runs in float32 and reaches (relative to
the largest magnitude) at most 3e-6 in values and 2.5e-5 in input gradients, the
stack's (the package's own float32 run is 2.4e-5 off there; rnnjax in float64 is
2e-7 off, the package's parallel form leaving the zero initial state out of its
stabiliser, which moves its ``eps``).

The package's mLSTM layer cannot run without a convolution (kernel size 0 fails in
``CausalConv1d.reset_parameters``, kernel size 1 trims its output to nothing), so
rnnjax's ``conv_kernel_size=0`` is checked against the package with a kernel of
size 2 set to the identity; the sLSTM layer takes 0 itself.
"""

import copy
import dataclasses
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax.interop import from_xlstm
from rnnjax.models import XLSTMBlock, XLSTMStack
from rnnjax.models.xlstm_layers import MLSTMLayer, SLSTMLayer

torch = pytest.importorskip("torch")
pytest.importorskip("xlstm")

from xlstm.blocks.mlstm.block import mLSTMBlock, mLSTMBlockConfig  # noqa: E402
from xlstm.blocks.mlstm.layer import mLSTMLayer, mLSTMLayerConfig  # noqa: E402
from xlstm.blocks.slstm.block import sLSTMBlock, sLSTMBlockConfig  # noqa: E402
from xlstm.blocks.slstm.layer import sLSTMLayer, sLSTMLayerConfig  # noqa: E402
from xlstm.components.feedforward import FeedForwardConfig  # noqa: E402
from xlstm.xlstm_block_stack import (  # noqa: E402
    xLSTMBlockStack,
    xLSTMBlockStackConfig,
)

B, T, E = 2, 7, 16
ROUND = 16  # the package rounds up-projections to multiples of this (default 64)
TOL = {"ys": 1e-5, "d xs": 5e-5}  # relative to the largest magnitude


@pytest.fixture(autouse=True, scope="module")
def quick_compiles():
    """Small programs compile faster than XLA's optimisations save (the suite's
    time); the numbers do not depend on them beyond float rounding."""
    old = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", old)


def slstm_config(num_heads, kernel_size, **kw):
    return sLSTMLayerConfig(
        embedding_dim=E,
        num_heads=num_heads,
        conv1d_kernel_size=kernel_size,
        backend="vanilla",
        **kw,
    )


def mlstm_config(num_heads, kernel_size, bias=False):
    return mLSTMLayerConfig(
        embedding_dim=E,
        num_heads=num_heads,
        conv1d_kernel_size=kernel_size,
        qkv_proj_blocksize=4,
        proj_factor=2.0,
        round_proj_up_to_multiple_of=ROUND,
        context_length=T,
        bias=bias,
    )


def ffn_config(act="gelu"):
    return FeedForwardConfig(
        proj_factor=1.3, act_fn=act, round_proj_up_to_multiple_of=ROUND
    )


def perturbed(module, seed):
    """``module`` in eval mode with every parameter replaced by normal noise (so
    none keeps the package's zeros and ones)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.4 * torch.randn(p.shape, generator=gen))
    return module.eval()


def compare(module, seed=0, grads=True, convert=from_xlstm):
    """Outputs (and with ``grads`` input gradients) of ``module`` run in float64
    and of its float32 conversion; returns the model, the rnnjax carry and the
    input. (Gradients of a few cases only: the suite's time.)"""
    model, params = convert(module)
    r = np.random.default_rng(seed)
    x = r.standard_normal((B, T, E)).astype(np.float32)
    gy = r.standard_normal((B, T, E)).astype(np.float32)

    xt = torch.from_numpy(x).double().requires_grad_(True)
    yt = copy.deepcopy(module).double()(xt)
    if grads:
        (yt * torch.from_numpy(gy).double()).sum().backward()

    def loss(x):
        carry, y = model.apply(params, x)
        return jnp.sum(y * gy), (carry, y)

    if grads:
        dx, (carry, y) = jax.jit(jax.grad(loss, has_aux=True))(jnp.asarray(x))
        checks = [("ys", y, yt), ("d xs", dx, xt.grad)]
    else:
        carry, y = jax.jit(lambda x: model.apply(params, x))(jnp.asarray(x))
        checks = [("ys", y, yt)]
    for what, got, want in checks:
        want = want.detach().numpy()
        err = np.abs(np.asarray(got, np.float64) - want).max() / np.abs(want).max()
        assert err < TOL[what], f"{what}: relative error {err:.3g}"
    return model, carry, x


@pytest.mark.parametrize("num_heads, kernel_size", [(1, 0), (4, 2)])
def test_slstm_layer(num_heads, kernel_size):
    seed = zlib.crc32(repr(("s", num_heads, kernel_size)).encode())
    module = perturbed(sLSTMLayer(slstm_config(num_heads, kernel_size)), seed)
    model, carry, x = compare(module, grads=num_heads == 1)
    assert isinstance(model, SLSTMLayer)
    assert (model.num_heads, model.conv_kernel_size) == (num_heads, kernel_size)
    # The final state: the package's (y, c, n, m) and its convolution window.
    _, state = module(torch.from_numpy(x), return_last_state=True)
    y, c, n, m = state["slstm_state"].detach().numpy()
    for name, want in (("h", y), ("c", c), ("n", n), ("m", m)):
        got = getattr(carry.cell, name)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=name)
    if kernel_size:
        window = state["conv_state"].detach().numpy()
        np.testing.assert_allclose(carry.conv, window, rtol=0, atol=0)


def test_mlstm_layer():
    module = perturbed(mLSTMLayer(mlstm_config(1, 4)), 1)
    model, _, _ = compare(module, seed=1)  # values and input gradients
    assert isinstance(model, MLSTMLayer)
    assert (model.inner_dim, model.num_heads, model.conv_kernel_size) == (2 * E, 1, 4)


def test_mlstm_layer_without_conv():
    """rnnjax's ``conv_kernel_size=0`` equals the package with an identity
    convolution (values)."""
    module = perturbed(mLSTMLayer(mlstm_config(4, 2)), 2)
    with torch.no_grad():
        module.conv1d.conv.weight.copy_(torch.tensor([0.0, 1.0]).expand(2 * E, 1, 2))
        module.conv1d.conv.bias.zero_()

    def convert(module):
        model, params = from_xlstm(module)
        params = {k: v for k, v in params.items() if k != "conv"}
        return dataclasses.replace(model, conv_kernel_size=0), params

    _, carry, _ = compare(module, seed=2, grads=False, convert=convert)
    assert carry.conv.shape == (B, 0, 2 * E)


def test_slstm_block():
    """Without the group norm's weight, with a GeLU FFN."""
    config = sLSTMBlockConfig(
        slstm=slstm_config(2, 0, group_norm_weight=False), feedforward=ffn_config()
    )
    config._num_blocks, config._block_idx = 1, 0
    config.__post_init__()
    model, _, _ = compare(perturbed(sLSTMBlock(config), 3), grads=False)
    assert isinstance(model, XLSTMBlock) and model.ffn is not None
    assert not model.layer.group_norm_weight


def test_mlstm_block_with_bias():
    config = mLSTMBlockConfig(mlstm=mlstm_config(2, 4, bias=True), _num_blocks=1)
    model, _, _ = compare(perturbed(mLSTMBlock(config), 4), grads=False)
    assert isinstance(model, XLSTMBlock) and model.ffn is None
    assert model.layer.bias


def test_stack():
    """Three blocks, sLSTM at 1 (with a swish FFN), then the post-blocks norm."""
    config = xLSTMBlockStackConfig(
        mlstm_block=mLSTMBlockConfig(mlstm=mlstm_config(4, 4)),
        slstm_block=sLSTMBlockConfig(
            slstm=slstm_config(2, 4), feedforward=ffn_config("swish")
        ),
        context_length=T,
        num_blocks=3,
        embedding_dim=E,
        slstm_at=[1],
    )
    model, carry, _ = compare(perturbed(xLSTMBlockStack(config), 5))
    assert isinstance(model, XLSTMStack)
    assert model.slstm_at == (1,) and model.post_norm and len(carry) == 3


# -------------------------------------------------------------------- errors


def test_not_an_xlstm_module():
    with pytest.raises(TypeError, match="module: expected an xlstm"):
        from_xlstm(torch.nn.Linear(2, 2))


def test_inexpressible_options():
    module = sLSTMLayer(slstm_config(2, 4))
    module.conv1d.config.channel_mixing = True
    with pytest.raises(ValueError, match="channel-mixing"):
        from_xlstm(module)
    module = sLSTMLayer(slstm_config(2, 0))
    module.slstm_cell.config.function = "lstm"
    with pytest.raises(ValueError, match="cell function 'lstm'"):
        from_xlstm(module)

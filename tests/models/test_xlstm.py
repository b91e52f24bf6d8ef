"""rnnjax's own xLSTM models (``rnnjax.models.xlstm``): continuation from a carry,
right padding, batch shapes, the implementations agreeing, dropout, the factory and
the argument checks. Parity with the ``xlstm`` package is in
tests/interop/test_xlstm.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax.models import (
    GatedFFN,
    MLSTMLayer,
    SLSTMLayer,
    XLSTMBlock,
    XLSTMStack,
    xlstm_stack,
)
from tests.conftest import assert_close, randomize

B, T, E = 2, 7, 8


@pytest.fixture(autouse=True, scope="module")
def quick_compiles():
    """Small programs compile faster than XLA's optimisations save."""
    old = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", old)


def small_stack(**kw):
    """An mLSTM block (2 heads, inner width 16) and an sLSTM block (2 heads)."""
    return xlstm_stack(
        E, 2, slstm_at=(1,), mlstm_heads=2, slstm_heads=2, round_proj_to=8,
        slstm_conv_kernel_size=3, **kw,
    )  # fmt: skip


def model_and_params(seed=0, **kw):
    model = small_stack(**kw)
    shapes = jax.eval_shape(model.init, jax.random.key(seed))
    return model, randomize(shapes, seed, scale=0.4)


def xs_like(seed=1, shape=(B, T, E)):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def leaves_close(a, b, what, tol=1e-5):
    for i, (x, y) in enumerate(
        zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    ):
        assert_close(x, y, f"{what} leaf {i}", tol)


def test_continuation_and_padding():
    """Running ``xs[:, :3]`` then ``xs[:, 3:]`` from the returned carry equals one
    run (the convolution windows and the cells' states carry over); with
    ``seq_lengths`` padded outputs are zero, NaN padding does not leak, and the
    carry is the one after the last valid step (on a 2-D batch)."""
    model, params = model_and_params()
    xs = xs_like()
    padded = xs.at[0, 3:].set(jnp.nan)[None]  # batch (1, B)
    lengths = jnp.array([[3, T]])

    @jax.jit
    def run(xs, padded):
        full = model.apply(params, xs)
        first = model.apply(params, xs[:, :3])
        second = model.apply(params, xs[:, 3:], carry=first[0])
        short = model.apply(params, padded, seq_lengths=lengths)
        return full, first, second, short

    full, first, second, short = run(xs, padded)
    assert_close(jnp.concatenate([first[1], second[1]], axis=1), full[1], "ys")
    leaves_close(second[0], full[0], "carry")
    carry, ys = jax.tree.map(lambda a: a[0], short)
    assert np.all(np.asarray(ys[0, 3:]) == 0)
    assert_close(ys[0, :3], full[1][0, :3], "padded ys")
    assert_close(ys[1], full[1][1], "unpadded ys")
    row = lambda tree, i: jax.tree.map(lambda a: a[i], tree)
    leaves_close(row(carry, 0), row(first[0], 0), "carry[0]")
    leaves_close(row(carry, 1), row(full[0], 1), "carry[1]")


def test_implementations_agree():
    """The sLSTM's ``"scan"`` and ``"fused"`` recurrences and the mLSTM core's
    scan, parallel and chunkwise forms (a chunk that does not divide ``T``),
    picked by ``options.impl``, give the same outputs and input gradients (the
    kernels' own tests compare the parameter gradients)."""
    model, params = model_and_params(seed=2)
    xs = xs_like(3)
    gy = xs_like(4)
    scan = rnnjax.UnrollOptions(impl="scan")
    chunkwise = rnnjax.UnrollOptions(impl="chunkwise")  # sLSTM: auto, fused

    def loss(xs, **kw):
        return jnp.sum(model.apply(params, xs, **kw)[1] * gy)

    @jax.jit
    def run(xs):
        return (
            jax.value_and_grad(loss)(xs, options=scan),
            jax.value_and_grad(loss)(xs, options=chunkwise, mlstm_chunk_size=3),
            loss(xs),  # sLSTM fused, mLSTM parallel (T <= the chunk size)
        )

    reference, chunked, auto = run(xs)
    leaves_close(chunked, reference, "chunkwise", tol=2e-5)
    assert_close(auto, reference[0], "auto", tol=2e-5)


def test_dropout():
    model, params = model_and_params(dropout=0.5)
    xs = xs_like()

    @jax.jit
    def run(k1, k2):
        apply = lambda **kw: model.apply(params, xs, **kw)[1]
        return (
            apply(key=k1),  # not training: no dropout
            apply(key=k1, training=True),
            apply(key=k2, training=True),
        )

    plain, a, b = run(jax.random.key(1), jax.random.key(2))
    assert not np.allclose(a, plain) and not np.allclose(a, b)
    with pytest.raises(TypeError, match="key: training=True with dropout"):
        model.apply(params, xs, training=True)


def test_factory():
    model = xlstm_stack(32, 4, slstm_at=(1, 3), ffn_proj_factor=1.3)
    params = jax.eval_shape(model.init, jax.random.key(0))
    assert isinstance(model, XLSTMStack) and model.slstm_at == (1, 3)
    assert [b.kind for b in model.blocks] == ["mlstm", "slstm", "mlstm", "slstm"]
    assert model.blocks[0].layer.inner_dim == 64  # 2 * 32 rounded up to 64
    assert model.blocks[1].ffn.hidden_dim == 64  # 1.3 * 32 rounded up to 64
    assert model.blocks[0].ffn is None
    assert xlstm_stack(8, 3, slstm_at="all").slstm_at == (0, 1, 2)
    # The paper's xLSTM[m:s]: the last s of each group of m + s blocks.
    assert xlstm_stack(8, 2, slstm_at="1:1").slstm_at == (1,)
    assert xlstm_stack(8, 16, slstm_at="7:1").slstm_at == (7, 15)
    assert xlstm_stack(8, 5, slstm_at="1:2").slstm_at == (1, 2, 4)
    assert set(params) == {"blocks", "post_norm"}
    assert set(params["blocks"][1]) == {"norm", "layer", "ffn_norm", "ffn"}
    assert params["blocks"][1]["layer"]["w_h"].shape == (4, 8, 32)


def test_argument_errors():
    model, params = model_and_params()
    xs = xs_like()
    cases = [
        (dict(xs=xs[..., :4]), ValueError, "xs: expected 8 features"),
        (dict(xs=jnp.ones((B, T, E), jnp.int32)), TypeError, "xs: expected a float"),
        (dict(params=params["blocks"]), ValueError, "params: expected the pytree"),
        (dict(carry=(None,)), ValueError, "carry: expected"),
        (dict(seq_lengths=jnp.array([1, 2, 3])), ValueError, "seq_lengths: expected"),
        (dict(mlstm_impl="quadratic"), ValueError, "mlstm_impl: expected"),
        (dict(options=rnnjax.UnrollOptions(remat="step")), ValueError, "remat"),
        (dict(options="scan"), TypeError, "options: expected"),
        (dict(key=jax.random.key(0)), TypeError, "key: this model has no dropout"),
    ]
    for kw, error, match in cases:
        args = dict(params=params, xs=xs) | kw
        with pytest.raises(error, match=match):
            model.apply(args.pop("params"), args.pop("xs"), **args)


def test_config_errors():
    with pytest.raises(ValueError, match="num_heads: expected a divisor"):
        SLSTMLayer(10, num_heads=4)
    with pytest.raises(ValueError, match="qkv_blocksize: expected a divisor"):
        MLSTMLayer(8, 18, num_heads=2, qkv_blocksize=4)
    with pytest.raises(ValueError, match="conv_kernel_size"):
        SLSTMLayer(8, num_heads=2, conv_kernel_size=-1)
    with pytest.raises(ValueError, match="forget_gate"):
        MLSTMLayer(8, 16, forget_gate="tanh")
    with pytest.raises(ValueError, match="slstm_at: expected indices in"):
        xlstm_stack(8, 2, slstm_at=(2,))
    with pytest.raises(ValueError, match="or a ratio 'm:s'"):
        xlstm_stack(8, 2, slstm_at="1:0")
    with pytest.raises(ValueError, match="ffn: expected embedding_dim=8"):
        XLSTMBlock(SLSTMLayer(8, num_heads=2), GatedFFN(16, 32))
    with pytest.raises(ValueError, match=r"blocks\[1\]: expected embedding_dim=8"):
        XLSTMStack((XLSTMBlock(SLSTMLayer(8, 2)), XLSTMBlock(SLSTMLayer(16, 2))))
    with pytest.raises(ValueError, match="activation"):
        GatedFFN(8, 16, activation="tanh")

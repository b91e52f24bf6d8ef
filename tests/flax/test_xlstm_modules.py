"""The linen and NNX `XLSTM` modules run an xLSTM model of rnnjax.models exactly
as the model itself does (the cells under `Cell`/`RNN` are in test_linen/test_nnx
through tests/flax/_common.CELLS)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import rnnjax
from rnnjax.flax import linen as rl
from rnnjax.flax import nnx as rx
from tests.conftest import assert_close

E = 8


def _model(dropout=0.0):
    return rnnjax.models.xlstm_stack(
        E, 2, slstm_at="1:1", mlstm_heads=2, slstm_heads=2, round_proj_to=8,
        dropout=dropout,
    )  # fmt: skip


def _same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _xs():
    return jax.random.normal(jax.random.key(1), (2, 5, E))


def test_linen_xlstm_is_the_model():
    model, xs = _model(), _xs()
    layer = rl.XLSTM(model, return_carry=True)
    variables = layer.init(jax.random.key(0), xs)
    params = variables["params"]["model"]
    assert jax.tree.structure(params) == jax.tree.structure(
        model.init(jax.random.key(0))
    )
    carry, ys = layer.apply(variables, xs, seq_lengths=jnp.array([5, 3]))
    ref_carry, ref = model.apply(params, xs, seq_lengths=jnp.array([5, 3]))
    _same(ys, ref)
    _same(carry, ref_carry)
    # The carry continues: the second half from the first half's carry.
    c1 = layer.apply(variables, xs[:, :2], return_carry=True)[0]
    ys2 = layer.apply(variables, xs[:, 2:], carry=c1, return_carry=False)
    assert_close(ys2, model.apply(params, xs)[1][:, 2:], "continued")


def test_linen_xlstm_dropout_needs_deterministic():
    model, xs = _model(dropout=0.5), _xs()
    layer = rl.XLSTM(model)
    variables = layer.init(jax.random.key(0), xs, deterministic=True)
    with pytest.raises(ValueError, match="deterministic"):
        layer.apply(variables, xs)
    a = layer.apply(
        variables, xs, deterministic=False, rngs={"dropout": jax.random.key(2)}
    )
    b = layer.apply(variables, xs, deterministic=True)
    assert a.shape == b.shape and not jnp.allclose(a, b)


def test_nnx_xlstm_is_the_model():
    model, xs = _model(), _xs()
    layer = rx.XLSTM(model, rngs=nnx.Rngs(0))
    params = model.init(jax.random.key(3))
    layer.set_params(params)
    _same(layer(xs), model.apply(params, xs)[1])
    assert jax.tree.structure(layer.get_params()) == jax.tree.structure(params)
    graphdef, state = nnx.split(layer)
    _same(nnx.merge(graphdef, state)(xs), layer(xs))
    with pytest.raises(ValueError, match="params"):
        layer.set_params({"blocks": ()})


def test_nnx_xlstm_dropout_follows_train_and_eval():
    model, xs = _model(dropout=0.5), _xs()
    layer = rx.XLSTM(model, rngs=nnx.Rngs(0, dropout=1))
    layer.eval()
    ref = model.apply(layer.get_params(), xs)[1]
    _same(layer(xs), ref)
    layer.train()
    assert not jnp.allclose(layer(xs), ref)


@pytest.mark.parametrize("module", [rl.XLSTM, rx.XLSTM])
def test_xlstm_module_refuses_other_models(module):
    kwargs = {"rngs": nnx.Rngs(0)} if module is rx.XLSTM else {}
    with pytest.raises(TypeError, match="model: expected an xLSTM model"):
        module(rnnjax.stack(rnnjax.lstm(4)), **kwargs)


def test_slstm_cell_in_flax_rnn():
    cell = rnnjax.slstm(E, num_heads=2)
    xs = _xs()
    layer = nn.RNN(rl.Cell(cell))
    variables = layer.init(jax.random.key(0), xs)
    ys = layer.apply(variables, xs)
    ref = rnnjax.unroll(cell, variables["params"]["cell"]["cell"], xs)[1]
    assert_close(ys, ref, "nn.RNN(Cell(slstm))")

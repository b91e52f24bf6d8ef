"""Flax's arguments mean what they mean in Flax: each rnnjax.flax.linen cell, given
Flax's parameters rearranged into rnnjax's layout, steps exactly as Flax's own
cell of the same name, with non-default activations, random parameters and a
random carry (the parameter names differ; the Flax page of the docs lists why)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax.flax import linen as rx
from tests.flax._common import assert_trees_close

B, I, H = 2, 3, 4
ACTS = dict(gate_fn=jax.nn.hard_sigmoid, activation_fn=jax.nn.soft_sign)
NORMAL = jax.nn.initializers.normal(0.5)


def _cat(p, names, leaf="kernel"):
    return jnp.concatenate([p[n][leaf] for n in names], axis=-1)


def lstm_params(p):
    return {
        "w_x": _cat(p, ["ii", "if", "ig", "io"]),
        "w_h": _cat(p, ["hi", "hf", "hg", "ho"]),
        "b": _cat(p, ["hi", "hf", "hg", "ho"], "bias"),
    }


def gru_params(p):
    return {
        "w_x": _cat(p, ["ir", "iz", "in"]),
        "w_h": _cat(p, ["hr", "hz", "hn"]),
        "b": _cat(p, ["ir", "iz", "in"], "bias"),
        "b_hn": p["hn"]["bias"],
    }


def simple_params(p):
    return {"w_x": p["i"]["kernel"], "w_h": p["h"]["kernel"], "b": p["i"]["bias"]}


def mgu_params(p):
    out = {
        "w_x": _cat(p, ["if", "in"]),
        "w_h": _cat(p, ["hf", "hn"]),
        "b": _cat(p, ["if", "in"], "bias"),
    }
    if "bias" in p["hn"]:
        out["b_hn"] = p["hn"]["bias"]
    return out


CASES = {
    "lstm": (nn.LSTMCell, rx.LSTMCell, dict(ACTS, bias_init=NORMAL), lstm_params),
    "optimized_lstm": (
        nn.OptimizedLSTMCell,
        rx.OptimizedLSTMCell,
        dict(bias_init=NORMAL),
        lstm_params,
    ),
    "gru": (nn.GRUCell, rx.GRUCell, dict(ACTS, bias_init=NORMAL), gru_params),
    "simple_residual": (
        nn.SimpleCell,
        rx.SimpleCell,
        dict(activation_fn=jax.nn.soft_sign, bias_init=NORMAL, residual=True),
        simple_params,
    ),
    "mgu": (
        nn.MGUCell,
        rx.MGUCell,
        dict(ACTS, forget_bias_init=NORMAL, activation_bias_init=NORMAL),
        mgu_params,
    ),
    "mgu_no_reset": (
        nn.MGUCell,
        rx.MGUCell,
        dict(activation_bias_init=NORMAL, reset_gate=False),
        mgu_params,
    ),
}


def random_like(rng, tree):
    """Random normal arrays of ``tree``'s shapes (NumPy's generator: nothing to
    compile)."""
    return jax.tree.map(lambda a: jnp.asarray(0.5 * rng.standard_normal(a.shape)), tree)


def both_steps(theirs, ours, convert, x_shape, seed):
    """Flax's and our step on random inputs, carry and parameters (Flax's
    initialisers are not run: compiling some takes seconds on a CPU)."""
    rng = np.random.default_rng(seed)
    x = random_like(rng, jax.ShapeDtypeStruct(x_shape, jnp.float32))
    key = jax.random.key(0)
    carry = random_like(rng, theirs.initialize_carry(key, x_shape))
    assert jax.tree.structure(carry) == jax.tree.structure(
        ours.initialize_carry(key, x_shape)
    )
    params = random_like(rng, jax.eval_shape(theirs.init, key, carry, x)["params"])
    want = theirs.apply({"params": params}, carry, x)
    return ours.apply({"params": {"cell": convert(params)}}, carry, x), want


@pytest.mark.parametrize("name", CASES)
def test_a_step_equals_flax(name):
    flax_cls, ours_cls, kwargs, convert = CASES[name]
    theirs, ours = flax_cls(H, **kwargs), ours_cls(H, **kwargs)
    got, want = both_steps(theirs, ours, convert, (B, I), 0)
    assert_trees_close(got, want, name, tol=1e-5)


def reorder(a):
    """Flax's ConvLSTM gate blocks ``i, g, f, o`` as rnnjax's ``i, f, g, o``."""
    i, g, f, o = jnp.split(a, 4, axis=-1)
    return jnp.concatenate([i, f, g, o], axis=-1)


def conv_lstm_params(p):
    """Flax's ``+1`` on the forget gate at every step is a forget bias one
    higher; its two biases sum into one."""
    bias = reorder(p["ih"]["bias"] + p["hh"]["bias"])
    return {
        "w_x": reorder(p["ih"]["kernel"]),
        "w_h": reorder(p["hh"]["kernel"]),
        "b": bias + jnp.repeat(jnp.array([0.0, 1.0, 0.0, 0.0]), H),
    }


def test_conv_lstm_step_equals_flax():
    theirs, ours = nn.ConvLSTMCell(H, (3, 3)), rx.ConvLSTMCell(H, (3, 3))
    got, want = both_steps(theirs, ours, conv_lstm_params, (B, 5, 5, I), 1)
    assert_trees_close(got, want, "conv_lstm", tol=1e-5)

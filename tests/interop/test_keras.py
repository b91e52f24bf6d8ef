"""Keras 3 parity: ``LSTM`` and ``GRU`` layers (and ``Bidirectional``) against their
rnnjax conversion."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax.interop import from_keras
from tests.conftest import assert_close

keras = pytest.importorskip("keras")

B, T, IN, H = 3, 5, 3, 4


def inputs(seed=0):
    return np.random.default_rng(seed).standard_normal((B, T, IN)).astype(np.float32)


def keras_code():
    """Keras' own JAX code relies on rank promotion (e.g. its orthogonal
    initialiser), which tests/conftest.py makes an error; allow it there only."""
    return jax.numpy_rank_promotion("allow")


def built(layer, seed=1):
    """Builds ``layer`` and gives every weight (biases included) random values."""
    r = np.random.default_rng(seed)
    with keras_code():
        layer.build((B, T, IN))
        weights = layer.get_weights()
        layer.set_weights(
            [0.5 * r.standard_normal(w.shape).astype(np.float32) for w in weights]
        )
    return layer


def keras_call(layer, x):
    with keras_code():
        return [np.asarray(a) for a in layer(x)]


def run(model, params, x):
    return jax.jit(model.apply)(params, jnp.asarray(x))


LAYERS = {
    "lstm": lambda **kw: keras.layers.LSTM(H, **kw),
    "gru_reset_after": lambda **kw: keras.layers.GRU(H, reset_after=True, **kw),
    "gru_reset_before": lambda **kw: keras.layers.GRU(H, reset_after=False, **kw),
}


@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("kind", list(LAYERS))
def test_layer_parity(kind, use_bias):
    layer = built(
        LAYERS[kind](use_bias=use_bias, return_sequences=True, return_state=True)
    )
    x = inputs()
    ys_k, *states_k = keras_call(layer, x)
    model, params = from_keras(layer)
    assert not model.time_major and model.num_layers == 1
    (final,), ys = run(model, params, x)
    assert_close(ys, ys_k, "ys")
    state = final[0]
    if kind == "lstm":
        assert isinstance(state, rnnjax.LSTMState)
        assert_close(state.h, states_k[0], "h")
        assert_close(state.c, states_k[1], "c")
    else:
        assert model.cells[0].reset_after == (kind == "gru_reset_after")
        assert_close(state, states_k[0], "h")


@pytest.mark.parametrize("kind", ["lstm", "gru_reset_after"])
def test_bidirectional_parity(kind):
    inner = LAYERS[kind](return_sequences=True, return_state=True)
    layer = built(keras.layers.Bidirectional(inner))
    x = inputs()
    ys_k, *states_k = keras_call(layer, x)
    model, params = from_keras(layer)
    assert model.bidirectional
    (finals,), ys = run(model, params, x)
    assert_close(ys, ys_k, "ys")
    if kind == "lstm":
        mine = [finals[0].h, finals[0].c, finals[1].h, finals[1].c]
    else:
        mine = list(finals)
    assert len(mine) == len(states_k)
    for a, b in zip(mine, states_k, strict=True):
        assert_close(a, b, "state")


def test_dropout_is_carried_over():
    layer = built(keras.layers.GRU(H, dropout=0.25, recurrent_dropout=0.5))
    model, _ = from_keras(layer)
    assert (model.input_dropout, model.recurrent_dropout) == (0.25, 0.5)


def test_go_backwards_is_rejected_with_the_recipe():
    layer = built(
        keras.layers.LSTM(
            H, go_backwards=True, return_sequences=True, return_state=True
        )
    )
    with pytest.raises(ValueError, match="go_backwards=True is not supported"):
        from_keras(layer)
    # The recipe in the message gives Keras' result.
    layer.go_backwards = False
    model, params = from_keras(layer)
    layer.go_backwards = True
    x = inputs()
    ys_k, h_k, c_k = keras_call(layer, x)
    state, ys = rnnjax.unroll(
        model.cells[0], params[0][0], jnp.asarray(x), reverse=True
    )
    assert_close(ys[..., ::-1, :], ys_k, "ys")
    assert_close(state.h, h_k, "h")
    assert_close(state.c, c_k, "c")


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: keras.layers.LSTM(H, activation="relu"), "activation='tanh'"),
        (
            lambda: keras.layers.GRU(H, recurrent_activation="hard_sigmoid"),
            "recurrent_activation='sigmoid'",
        ),
        (
            lambda: keras.layers.Bidirectional(
                keras.layers.LSTM(H, return_sequences=True), merge_mode="sum"
            ),
            "merge_mode='concat'",
        ),
    ],
    ids=["activation", "recurrent_activation", "merge_mode"],
)
def test_rejects_unsupported_options(make, match):
    with pytest.raises(ValueError, match=match):
        from_keras(built(make()))


def test_rejects_other_layers_and_unbuilt_ones():
    with pytest.raises(
        TypeError, match=r"layer: expected a keras\.layers\.LSTM.*Dense"
    ):
        from_keras(keras.layers.Dense(3))
    with pytest.raises(TypeError, match="layer: expected"):
        from_keras(keras.layers.SimpleRNN(3))
    with pytest.raises(ValueError, match="layer: expected a built LSTM"):
        from_keras(keras.layers.LSTM(H))


def _masked_inputs():
    """``x (B, T, I)`` whose first sequence is zero after its 3 valid steps."""
    x = inputs(seed=4)
    lengths = np.array([3] + [T] * (B - 1))
    x[0, 3:] = 0.0
    return x, lengths


def test_masked_steps_differ_as_documented():
    """Keras repeats the last valid output at masked steps; rnnjax gives zeros.
    The valid outputs and the final states agree (rnnjax.interop.keras says so)."""
    layer = built(keras.layers.LSTM(H, return_sequences=True, return_state=True))
    x, lengths = _masked_inputs()
    mask = np.arange(T)[None] < lengths[:, None]
    with keras_code():
        ys_k, h_k, c_k = [np.asarray(a) for a in layer(x, mask=mask)]
    model, params = from_keras(layer)
    carry, ys = model.apply(params, jnp.asarray(x), seq_lengths=jnp.asarray(lengths))
    valid = jnp.asarray(mask)[..., None]
    assert_close(jnp.where(valid, ys, 0.0), jnp.where(valid, ys_k, 0.0), "ys")
    np.testing.assert_array_equal(np.asarray(ys)[0, 3:], 0.0)
    for t in range(3, T):  # Keras: the last valid output, repeated
        np.testing.assert_array_equal(ys_k[0, t], ys_k[0, 2])
    assert_close(carry[0][0].h, h_k, "h")
    assert_close(carry[0][0].c, c_k, "c")


def test_masking_layer_with_initial_state_differs_as_documented():
    """A Masking layer meeting initial_state: Keras returns the unmasked run's final
    state; rnnjax the state at the last valid step."""
    layer = built(keras.layers.LSTM(H, return_sequences=True, return_state=True))
    x, lengths = _masked_inputs()
    h0 = np.full((B, H), 0.3, np.float32)
    c0 = np.full((B, H), 0.1, np.float32)
    with keras_code():
        inp, ih, ic = keras.Input((T, IN)), keras.Input((H,)), keras.Input((H,))
        out = layer(keras.layers.Masking(0.0)(inp), initial_state=[ih, ic])
        keras_model = keras.Model([inp, ih, ic], out)
        _, h_k, _ = [np.asarray(a) for a in keras_model([x, h0, c0])]
    model, params = from_keras(layer)
    start = ((rnnjax.LSTMState(jnp.asarray(c0), jnp.asarray(h0), None),),)
    lengths = jnp.asarray(lengths)
    carry, _ = model.apply(params, jnp.asarray(x), seq_lengths=lengths, carry=start)
    unmasked, _ = model.apply(params, jnp.asarray(x), carry=start)
    assert_close(carry[0][0].h[1:], h_k[1:], "full-length h")
    assert_close(unmasked[0][0].h[0], h_k[0], "Keras: the unmasked run")
    assert not np.allclose(carry[0][0].h[0], h_k[0], atol=1e-4)

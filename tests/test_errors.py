"""Bad input: a clear ValueError or TypeError at trace time, naming the argument,
the expected and the received."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax

H, INPUT = 4, 3


@pytest.fixture
def setup():
    cell = rnnjax.lstm(H)
    return cell, cell.init(jax.random.key(0), INPUT), jnp.ones((2, 5, INPUT))


def raises_under_jit(fn, *args, exc, match):
    """The error must come from tracing (before any compute)."""
    with pytest.raises(exc, match=match):
        jax.jit(fn).trace(*args)


def test_mismatched_input_size(setup):
    cell, params, _ = setup
    xs = jnp.ones((2, 5, INPUT + 1))
    raises_under_jit(
        lambda x: rnnjax.unroll(cell, params, x),
        xs,
        exc=ValueError,
        match=r"xs: expected 3 input features.*got 4",
    )


def test_wrong_rank(setup):
    cell, params, _ = setup
    with pytest.raises(ValueError, match=r"xs: expected rank >= 2.*got shape \(3,\)"):
        rnnjax.unroll(cell, params, jnp.ones((INPUT,)))


def test_integer_inputs(setup):
    cell, params, _ = setup
    with pytest.raises(TypeError, match="xs: expected a floating dtype, got int32"):
        rnnjax.unroll(cell, params, jnp.ones((2, 5, INPUT), jnp.int32))


def test_carry_wrong_structure(setup):
    cell, params, xs = setup
    with pytest.raises(ValueError, match=r"carry: expected LSTMState.*got"):
        rnnjax.unroll(cell, params, xs, carry=jnp.zeros((2, H)))


def test_carry_wrong_shape(setup):
    cell, params, xs = setup
    bad = cell.initial_carry((3,))
    with pytest.raises(ValueError, match=r"carry: expected .*\(2, 4\).*got .*\(3, 4\)"):
        rnnjax.unroll(cell, params, xs, carry=bad)


def test_params_of_another_cell(setup):
    cell, _, xs = setup
    gru_params = rnnjax.gru(H).init(jax.random.key(0), INPUT)
    with pytest.raises(ValueError, match="params: expected"):
        rnnjax.unroll(cell, gru_params, xs)
    with pytest.raises(ValueError, match="params: expected"):
        rnnjax.unroll(cell, {"nothing": jnp.ones(3)}, xs)


@pytest.mark.parametrize(
    "lengths, exc, match",
    [
        (
            jnp.array([1, 2, 3]),
            ValueError,
            r"seq_lengths: expected shape \(2,\).*\(3,\)",
        ),
        (jnp.array([1.0, 2.0]), TypeError, "seq_lengths: expected an integer dtype"),
    ],
)
def test_bad_lengths(setup, lengths, exc, match):
    cell, params, xs = setup
    raises_under_jit(
        lambda lens: rnnjax.unroll(cell, params, xs, seq_lengths=lens),
        lengths,
        exc=exc,
        match=match,
    )


@pytest.mark.parametrize(
    "resets, exc, match",
    [
        (jnp.zeros((2, 4), bool), ValueError, r"resets: expected shape \(2, 5\)"),
        (jnp.zeros((2, 5)), TypeError, "resets: expected a bool array"),
    ],
)
def test_bad_resets(setup, resets, exc, match):
    cell, params, xs = setup
    with pytest.raises(exc, match=match):
        rnnjax.unroll(cell, params, xs, resets=resets)


def test_unknown_impl_and_bad_unroll(setup):
    cell, params, xs = setup
    with pytest.raises(ValueError, match=r"impl: expected one of .*got 'cuda'"):
        rnnjax.unroll(cell, params, xs, options=rnnjax.UnrollOptions(impl="cuda"))

    with pytest.raises(ValueError, match="unroll: expected a positive int, got 0"):
        rnnjax.unroll(cell, params, xs, options=rnnjax.UnrollOptions(unroll=0))


def test_fused_on_a_cell_without_the_form(setup):
    _, _, xs = setup
    cell = rnnjax.gru(H, reset_after=False)
    params = cell.init(jax.random.key(0), INPUT)
    with pytest.raises(ValueError, match="impl: 'fused' needs a cell of the fused"):
        rnnjax.unroll(cell, params, xs, options=rnnjax.UnrollOptions(impl="fused"))


def test_not_a_cell(setup):
    _, params, xs = setup
    with pytest.raises(TypeError, match="cell: expected an rnnjax cell"):
        rnnjax.unroll("lstm", params, xs)


@pytest.mark.parametrize(
    "factory, kwargs, exc, match",
    [
        (rnnjax.lstm, dict(coupled=True, forget_gate=False), ValueError, "coupled"),
        (rnnjax.lstm, dict(input_activation="swish"), ValueError, "input_activation"),
        (rnnjax.lstm, dict(proj_size=0), ValueError, "proj_size"),
        (rnnjax.lstm, dict(peepholes=True), TypeError, "peepholes"),
        (rnnjax.simple_rnn, dict(activation="gelu"), ValueError, "activation"),
        (rnnjax.gru, dict(reset_before=True), TypeError, "reset_before"),
    ],
)
def test_bad_cell_options(factory, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        factory(H, **kwargs)


@pytest.mark.parametrize("size", [0, -1, 2.5, "8"])
def test_bad_hidden_size(size):
    with pytest.raises(ValueError, match="hidden_size: expected a positive int"):
        rnnjax.gru(size)


def test_init_needs_a_key():
    with pytest.raises(TypeError, match="key: expected a PRNG key"):
        rnnjax.stack(rnnjax.lstm(H)).init(0, INPUT)


def test_key_where_none_is_expected_and_none_where_one_is():
    plain = rnnjax.stack(rnnjax.lstm(H))
    params = plain.init(jax.random.key(0), INPUT)
    xs = jnp.ones((2, 5, INPUT))
    with pytest.raises(TypeError, match="key: this stack has no dropout"):
        plain.apply(params, xs, key=jax.random.key(1))
    dropped = rnnjax.stack(rnnjax.lstm(H), dropout=0.5, num_layers=2)
    params2 = dropped.init(jax.random.key(0), INPUT)
    with pytest.raises(TypeError, match="key: training=True with dropout needs"):
        dropped.apply(params2, xs, training=True)
    with pytest.raises(TypeError, match="key: expected a PRNG key"):
        dropped.apply(params2, xs, key=3, training=True)


def test_bad_stack_options_and_carry():
    with pytest.raises(ValueError, match=r"dropout: expected a float in \[0, 1\)"):
        rnnjax.stack(rnnjax.lstm(H), dropout=1.5)
    with pytest.raises(ValueError, match="num_layers: expected 2"):
        rnnjax.stack([rnnjax.lstm(H), rnnjax.gru(H)], num_layers=3)
    with pytest.raises(TypeError, match=r"cells\[1\]: expected an rnnjax cell"):
        rnnjax.stack([rnnjax.lstm(H), "gru"])
    model = rnnjax.stack(rnnjax.gru(H), num_layers=2, bidirectional=True)
    params = model.init(jax.random.key(0), INPUT)
    with pytest.raises(ValueError, match="carry: expected a tuple of 2 layer"):
        model.apply(params, jnp.ones((2, 5, INPUT)), carry=(jnp.zeros((2, H)),))


def test_mut1_input_size():
    with pytest.raises(ValueError, match=r"input_size: MUT1.*embed_input=True"):
        rnnjax.mut1(H).init(jax.random.key(0), INPUT)


@pytest.mark.parametrize("key", [None, 0, jnp.ones(3)])
def test_cell_init_needs_a_key(key):
    with pytest.raises(TypeError, match="key: expected a PRNG key"):
        rnnjax.gru(H).init(key, INPUT)


def test_cell_init_needs_a_positive_input_size():
    with pytest.raises(ValueError, match="input_size: expected a positive int"):
        rnnjax.lstm(H).init(jax.random.key(0), 0)


# ------------------------------------------------------------ structures (issue 14)


@pytest.mark.parametrize(
    "layers, bidirectional, given, match",
    [
        (2, True, lambda p: p[:1], r"2 layer\(s\) with 2 direction.*got tuple of 1"),
        (2, False, lambda p: p + p[:1], r"2 layer\(s\).*got tuple of 3 layer"),
        (
            2,
            True,
            lambda p: tuple((d[0],) for d in p),
            r"2 layer\(s\) with 2 direction.*\[1, 1\]",
        ),
        (1, False, lambda p: p[0][0], r"1 layer\(s\) with 1 direction.*got dict"),
    ],
)
def test_stack_params_of_another_structure(layers, bidirectional, given, match):
    model = rnnjax.stack(rnnjax.lstm(H), num_layers=layers, bidirectional=bidirectional)
    params = given(model.init(jax.random.key(0), INPUT))
    raises_under_jit(
        lambda x: model.apply(params, x),
        jnp.ones((2, 5, INPUT)),
        exc=ValueError,
        match="params: expected a tuple of " + match,
    )


def test_bidirectional_layer_params_of_one_direction():
    layer = rnnjax.stack(rnnjax.gru(H), bidirectional=True).layers[0]
    params = layer.init(jax.random.key(0), INPUT)
    with pytest.raises(ValueError, match=r"params: expected a \(forward, backward\)"):
        layer.apply(params[:1], jnp.ones((2, 5, INPUT)))


@pytest.mark.parametrize(
    "cell, carry, match",
    [
        (
            rnnjax.lstm(H),
            jnp.zeros((2, H)),
            r"LSTM.initial_carry, LSTMState\(c=\*, h=\*, gates=None\); got \*$",
        ),
        (rnnjax.lstm(H), (jnp.zeros((2, H)),) * 2, r"LSTM.*got \(\*, \*\)"),
        (
            rnnjax.gru(H),
            (jnp.zeros((2, H)),) * 2,
            r"GRU.initial_carry, \*; got \(\*, \*\)",
        ),
    ],
)
def test_step_carry_of_another_type(cell, carry, match):
    params = cell.init(jax.random.key(0), INPUT)
    with pytest.raises(ValueError, match="carry: expected the structure of " + match):
        cell.step(params, carry, jnp.ones((2, INPUT)))


def test_foreign_arrays_are_named(setup):
    """A PyTorch tensor as xs, seq_lengths or resets (of unroll, or of an
    interop model's apply) is refused with the argument's name; NumPy arrays and
    lists (seq_lengths) are accepted."""
    torch = pytest.importorskip("torch")
    cell, params, xs = setup
    hint = r"got torch.Tensor \(convert it first"
    with pytest.raises(TypeError, match="xs: expected a JAX or NumPy array, " + hint):
        rnnjax.unroll(cell, params, torch.ones(2, 5, INPUT))
    with pytest.raises(TypeError, match="seq_lengths: expected a JAX or NumPy array"):
        rnnjax.unroll(cell, params, xs, seq_lengths=torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="resets: expected a JAX or NumPy array"):
        rnnjax.unroll(cell, params, xs, resets=torch.zeros(2, 5, dtype=torch.bool))
    model, model_params = rnnjax.interop.from_torch(torch.nn.GRU(INPUT, H))
    with pytest.raises(TypeError, match="xs: expected a JAX or NumPy array"):
        model.apply(model_params, torch.ones(5, 2, INPUT))
    with pytest.raises(TypeError, match="seq_lengths: expected a JAX or NumPy array"):
        model.apply(model_params, xs.swapaxes(0, 1), seq_lengths=torch.tensor([1, 2]))
    rnnjax.unroll(cell, params, np.ones((2, 5, INPUT), np.float32), seq_lengths=[1, 2])

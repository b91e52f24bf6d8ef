"""rnnjax.flax.linen: each module equals rnnjax's pure functions on the same
parameters, works inside Flax's own ``nn.RNN`` / ``nn.Bidirectional``, shares its
parameter pytree with rnnjax, and trains."""

import subprocess
import sys

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rnnjax
from rnnjax.flax import linen as rnn
from tests.conftest import assert_close, randomize
from tests.flax._common import (
    CELLS,
    COMPOSED,
    DROPOUT,
    HIDDEN,
    INPUT,
    RNN_CASES,
    assert_trees_close,
    data,
    fast,
    flax_form,
    random_init,
    shapes,
    train_adding,
    valid,
)

# ------------------------------------------------------------------------------ Cell


@pytest.mark.parametrize("name", CELLS)
def test_cell_step_equals_pure_step(name):
    cell = CELLS[name]
    module = rnn.Cell(cell)
    x = data()[:, 0]
    carry = jax.tree.map(lambda c: c + 0.2, cell.initial_carry(x.shape[:-1]))
    assert shapes(module.initialize_carry(None, x.shape)) == shapes(flax_form(carry))
    variables = module.init(jax.random.key(0), flax_form(carry), x)
    assert shapes(variables) == {
        "params": {"cell": shapes(cell.init(jax.random.key(0), INPUT))}
    }
    params = randomize(variables["params"]["cell"])
    step = lambda p, c, x: module.apply({"params": {"cell": p}}, flax_form(c), x)
    got, want = fast(lambda *a: (step(*a), cell.step(*a)))(params, carry, x)
    assert_trees_close(got, flax_form(want), name)
    assert module.num_feature_axes == 1


@pytest.mark.parametrize("name", CELLS)
def test_cell_inside_flax_rnn_matches_unroll(name):
    cell = CELLS[name]
    layer = nn.RNN(rnn.Cell(cell), return_carry=True)
    xs = data()
    variables = random_init(layer.init, xs)
    got, want = fast(
        lambda v, xs: (
            layer.apply(v, xs),
            rnnjax.unroll(cell, v["params"]["cell"]["cell"], xs),
        )
    )(variables, xs)
    assert_trees_close(got, flax_form(want), name)


@pytest.mark.parametrize("name", ["lstm", "gru_reset_before"])
def test_cell_inside_flax_rnn_with_lengths(name):
    cell, lengths = CELLS[name], jnp.array([6, 3])
    layer = nn.RNN(rnn.Cell(cell), return_carry=True)
    xs = data()
    variables = random_init(layer.init, xs)
    (carry, ys), (ref_carry, ref_ys) = fast(
        lambda v, xs, n: (
            layer.apply(v, xs, seq_lengths=n),
            rnnjax.unroll(cell, v["params"]["cell"]["cell"], xs, seq_lengths=n),
        )
    )(variables, xs, lengths)
    # Flax does not zero the padded outputs; compare the valid steps.
    assert_trees_close(carry, flax_form(ref_carry), name)
    assert_close(ys * valid(lengths, 6), ref_ys, name)


@pytest.mark.parametrize("name", ["lstm", "mgu"])
def test_cell_inside_flax_bidirectional(name):
    cell, lengths = CELLS[name], jnp.array([6, 4])
    layer = nn.Bidirectional(nn.RNN(rnn.Cell(cell)), nn.RNN(rnn.Cell(cell)))
    xs = data()
    variables = random_init(layer.init, xs, seq_lengths=lengths)

    def run(v, xs, n):
        fwd = v["params"]["forward_rnn"]["cell"]["cell"]
        bwd = v["params"]["backward_rnn"]["cell"]["cell"]
        want = jnp.concatenate(
            [
                rnnjax.unroll(cell, fwd, xs, seq_lengths=n)[1],
                rnnjax.unroll(cell, bwd, xs, seq_lengths=n, reverse=True)[1],
            ],
            axis=-1,
        )
        return layer.apply(v, xs, seq_lengths=n), want

    ys, want = fast(run)(variables, xs, lengths)
    assert_close(ys * valid(lengths, 6), want, name)


def test_rnnjax_params_load_into_flax_rnn():
    cell = CELLS["gru"]
    params = randomize(cell.init(jax.random.key(5), INPUT))
    xs = data()
    ys = nn.RNN(rnn.Cell(cell)).apply({"params": {"cell": {"cell": params}}}, xs)
    assert_close(ys, rnnjax.unroll(cell, params, xs)[1], "rnnjax -> linen")


def test_cell_rejects_params_of_another_shape():
    cell = CELLS["lstm"]
    params = cell.init(jax.random.key(0), INPUT + 1)
    x = data()[:, 0]
    with pytest.raises(flax.errors.ScopeParamShapeError):
        rnn.Cell(cell).apply({"params": {"cell": params}}, cell.initial_carry((2,)), x)


def test_cell_rejects_a_non_cell():
    with pytest.raises(TypeError, match="rnnjax cell"):
        rnn.Cell(nn.LSTMCell(4))


@pytest.mark.parametrize(
    ("shorthand", "factory", "options"),
    [
        (rnn.MUT1Cell, rnnjax.mut1, {"embed_input": True}),
        (rnn.MUT2Cell, rnnjax.mut2, {}),
        (rnn.MUT3Cell, rnnjax.mut3, {}),
    ],
)
def test_shorthands_build_the_cell(shorthand, factory, options):
    module = shorthand(5, options=options, name="rec")
    assert isinstance(module, rnn.Cell) and module.name == "rec"
    assert isinstance(module, shorthand) and isinstance(module, rnn.FactoryCell)
    assert module.cell == factory(5, **options)
    assert module.features == 5 and module.options == options
    assert module.clone().cell == module.cell  # rebuilt from features and options


@pytest.mark.parametrize(
    ("shorthand", "options", "expected"),
    [
        (rnn.LSTMCell, {"peephole": True}, dict(peephole=True, forget_bias=0.0)),
        (rnn.OptimizedLSTMCell, {}, dict(forget_bias=0.0, gate_activation="sigmoid")),
        (rnn.GRUCell, {"reset_after": False}, dict(reset_after=False)),
        (rnn.SimpleCell, {"activation": "relu"}, dict(activation="relu")),
        (rnn.MGUCell, {}, dict(reset_after=True, gate_keeps=True, reset_gate=True)),
    ],
)
def test_flax_shorthands_take_flax_arguments_and_options(shorthand, options, expected):
    """Flax's defaults (no forget bias, sigmoid gates, tanh), the rnnjax options on
    top, Flax's activations mapped to rnnjax's names (so the fused and Pallas
    kernels still apply), and a rebuild from the fields."""
    module = shorthand(5, options=options, name="rec")
    assert isinstance(module, rnn.FlaxCell) and module.name == "rec"
    assert module.cell.hidden_size == 5 and module.options == options
    assert {k: getattr(module.cell, k) for k in expected} == expected
    assert module.clone().cell == module.cell
    relu = shorthand(5, activation_fn=jax.nn.relu).cell
    assert "relu" in {
        getattr(relu, a, None) for a in ("activation", "input_activation")
    }


def test_shorthand_parameter_names_read_like_flax():
    class Model(nn.Module):
        @nn.compact
        def __call__(self, xs):
            ys = nn.RNN(rnn.LSTMCell(HIDDEN, options={"peephole": True}))(xs)
            gru = rnn.GRUCell(HIDDEN)
            return ys, gru(gru.initialize_carry(None, xs[:, 0].shape), xs[:, 0])

    xs = data()
    variables = jax.eval_shape(Model().init, jax.random.key(0), xs)
    cell = rnnjax.lstm(HIDDEN, peephole=True)
    assert shapes(variables) == {
        "params": {
            "LSTMCell_0": {"cell": shapes(cell.init(jax.random.key(0), INPUT))},
            "GRUCell_0": {
                "cell": shapes(rnnjax.gru(HIDDEN).init(jax.random.key(0), INPUT))
            },
        }
    }


def test_shorthands_are_subclassable():
    class WideLSTM(rnn.LSTMCell):
        """An LSTM twice as wide as asked."""

        @nn.nowrap
        def make_cell(self):
            return rnnjax.lstm(2 * self.features, **self.options)

    module = WideLSTM(3, options={"peephole": True})
    assert isinstance(module, rnn.LSTMCell)
    assert module.cell == rnnjax.lstm(6, peephole=True)
    xs = data()
    variables = random_init(nn.RNN(module).init, xs)
    ys = nn.RNN(module).apply(variables, xs)
    assert ys.shape == (2, 6, 6)


# ------------------------------------------------------------------------------- RNN


@pytest.mark.parametrize("case", RNN_CASES)
def test_rnn_equals_stack_apply(case):
    options = RNN_CASES[case]
    layer = rnn.RNN(**options)
    xs, lengths = data(), jnp.array([6, 2])
    if layer.time_major:
        xs = jnp.swapaxes(xs, 0, 1)
    params = random_init(layer.init, xs)["params"]["stack"]
    carry0 = jax.tree.map(lambda c: c + 0.1, layer.stack.initial_carry((2,)))
    assert shapes(layer.initial_carry((2,))) == shapes(flax_form(carry0))
    resets = jnp.zeros(xs.shape[:-1], bool).at[3].set(True)
    unroll_options = options.get("options", rnnjax.UnrollOptions())
    assert layer.options == unroll_options

    def run(p, xs, carry, n, resets):
        kw = dict(seq_lengths=n, resets=resets)
        got = layer.apply(
            {"params": {"stack": p}},
            xs,
            carry=flax_form(carry),
            return_carry=True,
            **kw,
        )
        want = layer.stack.apply(p, xs, carry=carry, options=unroll_options, **kw)
        return got, flax_form(want)

    got, want = fast(run)(params, xs, carry0, lengths, resets)
    assert_trees_close(got, want, case)


def test_rnn_runs_a_composed_stack():
    layer = rnn.RNN(COMPOSED)
    assert layer.stack is COMPOSED
    xs, key = data(), jax.random.key(3)
    variables = random_init(layer.init, xs, deterministic=True)

    def run(v, xs, key):
        p = v["params"]["stack"]
        ys = layer.apply(v, xs, deterministic=False, rngs={"dropout": key})
        k = layer.apply(
            v, method=lambda m: m.make_rng("dropout"), rngs={"dropout": key}
        )
        return ys, COMPOSED.apply(p, xs, key=k, training=True)[1]

    ys, want = fast(run)(variables, xs, key)
    assert_close(ys, want, "composed stack")
    assert ys.shape == (2, 6, HIDDEN)
    with pytest.raises(ValueError, match=r"cells: an rnnjax\.Stack brings its own"):
        _ = rnn.RNN(COMPOSED, bidirectional=True).stack


def test_rnn_options_reach_the_stack():
    layer = rnn.RNN(
        [rnnjax.gru(HIDDEN), rnnjax.lstm(5)],
        bidirectional=True,
        dropout=0.1,
        input_dropout=0.2,
        recurrent_dropout=0.3,
        time_major=True,
    )
    assert layer.stack == rnnjax.stack(
        [rnnjax.gru(HIDDEN), rnnjax.lstm(5)],
        bidirectional=True,
        dropout=0.1,
        input_dropout=0.2,
        recurrent_dropout=0.3,
        time_major=True,
    )
    assert rnn.RNN(rnnjax.mgu(3), num_layers=3).stack.num_layers == 3


def test_rnn_params_are_stack_init_and_round_trip():
    layer = rnn.RNN(rnnjax.gru(HIDDEN), num_layers=2, bidirectional=True)
    xs = data()
    variables = layer.init(jax.random.key(0), xs)
    assert shapes(variables) == {
        "params": {"stack": shapes(layer.stack.init(jax.random.key(0), INPUT))}
    }
    rnnjax_params = randomize(layer.stack.init(jax.random.key(7), INPUT))

    def run(flax_params, rnnjax_params, xs):
        return (
            # rnnjax -> linen
            layer.apply({"params": {"stack": rnnjax_params}}, xs),
            layer.stack.apply(rnnjax_params, xs)[1],
            # linen -> rnnjax
            layer.stack.apply(flax_params["stack"], xs)[1],
            layer.apply({"params": flax_params}, xs),
        )

    a, b, c, d = fast(run)(variables["params"], rnnjax_params, xs)
    assert_close(a, b, "rnnjax -> linen")
    assert_close(c, d, "linen -> rnnjax")


def test_rnn_dropout_off_when_deterministic():
    layer = rnn.RNN(**DROPOUT)
    xs = data()
    variables = random_init(layer.init, xs, deterministic=True)
    fixed = rnn.RNN(**DROPOUT, deterministic=True)  # the call's default

    def run(v, xs):
        return (
            layer.apply(v, xs, deterministic=True),
            fixed.apply(v, xs),
            layer.stack.apply(v["params"]["stack"], xs)[1],
        )

    ys, ys_fixed, want = fast(run)(variables, xs)
    assert_close(ys, want, "eval")
    assert_close(ys_fixed, want, "attribute")
    with pytest.raises(ValueError, match="deterministic"):
        layer.apply(variables, xs)


def test_rnn_dropout_from_the_rng_stream_is_reproducible():
    layer = rnn.RNN(**DROPOUT)
    xs = data()
    variables = random_init(layer.init, xs, deterministic=True)

    def run(v, xs, seed_key):
        rngs = {"dropout": seed_key}
        ys = layer.apply(v, xs, deterministic=False, rngs=rngs)
        # The module draws one key from the stream and hands it to Stack.apply.
        key = layer.apply(v, method=lambda m: m.make_rng("dropout"), rngs=rngs)
        want = layer.stack.apply(v["params"]["stack"], xs, key=key, training=True)
        return ys, want[1], layer.stack.apply(v["params"]["stack"], xs)[1]

    run = jax.jit(run)
    ys, want, no_dropout = run(variables, xs, jax.random.key(1))
    assert_close(ys, want, "dropout = Stack.apply(key)")
    np.testing.assert_array_equal(ys, run(variables, xs, jax.random.key(1))[0])
    assert not np.allclose(ys, run(variables, xs, jax.random.key(2))[0])
    assert not np.allclose(ys, no_dropout)


def test_rnn_without_dropout_needs_no_flag_or_rng():
    layer = rnn.RNN(rnnjax.gru(HIDDEN))
    xs = data()
    variables = random_init(layer.init, xs)
    run = lambda v, xs: (layer.apply(v, xs, deterministic=False), layer.apply(v, xs))
    assert_close(*fast(run)(variables, xs), "no dropout")


def test_import_rnnjax_does_not_import_flax():
    code = (
        "import sys, rnnjax, rnnjax.flax; assert 'flax' not in sys.modules; "
        "from rnnjax.flax import linen; assert 'flax.nnx' not in sys.modules; "
        "assert rnnjax.flax.linen is linen and linen.nn.Module"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -------------------------------------------------------------------------- training


class Regressor(nn.Module):
    """An LSTM layer and a linear read-out of its last output."""

    @nn.compact
    def __call__(self, xs):
        ys = rnn.RNN(rnnjax.lstm(32))(xs)
        return nn.Dense(1)(ys[:, -1])


def test_linen_model_learns_the_adding_problem():
    model = Regressor()
    params = fast(model.init)(jax.random.key(0), data(features=2))["params"]
    loss = lambda p, x, y: jnp.mean((model.apply({"params": p}, x) - y) ** 2)
    _, final, trivial = train_adding(loss, params, optax.adam(1e-2))
    assert final < 0.05 * trivial, (final, trivial)  # reached about 0.006 * trivial


def test_a_factory_cell_without_a_factory_is_named():
    class Bare(rnn.FactoryCell):
        pass

    with pytest.raises(TypeError, match="Bare: a FactoryCell subclass sets"):
        Bare(4)

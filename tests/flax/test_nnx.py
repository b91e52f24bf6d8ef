"""rnnjax.flax.nnx: each module equals rnnjax's pure functions on the same
parameters, works inside Flax's own ``nnx.RNN`` / ``nnx.Bidirectional``, shares its
parameter pytree with rnnjax, switches dropout with ``.train()`` / ``.eval()``, and
trains."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import rnnjax
from rnnjax.flax import nnx as rnn
from tests.conftest import assert_close, randomize
from tests.flax._common import (
    CELLS,
    COMPOSED,
    DROPOUT,
    HIDDEN,
    INPUT,
    RNN_CASES,
    adding_problem,
    assert_trees_close,
    data,
    fast,
    flax_form,
    shapes,
    valid,
)


def on(module, f, *args):
    """``f(module, *args)``, jit-compiled (the module split into a graph and a
    state and merged back inside)."""
    graphdef, state = nnx.split(module)
    return fast(lambda state, *a: f(nnx.merge(graphdef, state), *a))(state, *args)


def randomized(module, seed=0):
    """``module`` with every ``nnx.Param`` replaced by normal noise."""
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    return nnx.merge(graphdef, randomize(params, seed), rest)


def abstract(make):
    """``make()``'s module, traced only (no compile), with random parameters."""
    graphdef, params, rest = nnx.split(nnx.eval_shape(make), nnx.Param, ...)
    rest = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), rest)
    return nnx.merge(graphdef, randomize(params), rest)


# ------------------------------------------------------------------------------ Cell


@pytest.mark.parametrize("name", CELLS)
def test_cell_step_equals_pure_step(name):
    cell = CELLS[name]
    module = rnn.Cell(cell, INPUT, rngs=nnx.Rngs(0))
    assert shapes(module.get_params()) == shapes(cell.init(jax.random.key(0), INPUT))
    module = randomized(module)
    x = data()[:, 0]
    carry = jax.tree.map(lambda c: c + 0.2, cell.initial_carry(x.shape[:-1]))
    assert shapes(module.initialize_carry(x.shape)) == shapes(flax_form(carry))
    both = lambda m, c, x: (m(flax_form(c), x), cell.step(m.get_params(), c, x))
    got, want = on(module, both, carry, x)
    assert_trees_close(got, flax_form(want), name)
    assert module.num_feature_axes == 1 and module.in_features == INPUT


@pytest.mark.parametrize("name", CELLS)
def test_cell_inside_nnx_rnn_matches_unroll(name):
    cell = CELLS[name]
    layer = abstract(
        lambda: nnx.RNN(rnn.Cell(cell, INPUT, rngs=nnx.Rngs(0)), return_carry=True)
    )

    def run(m, xs):
        return m(xs), rnnjax.unroll(cell, m.cell.get_params(), xs)

    got, want = on(layer, run, data())
    assert_trees_close(got, flax_form(want), name)


@pytest.mark.parametrize("name", ["lstm", "gru_reset_before"])
def test_cell_inside_nnx_rnn_with_lengths(name):
    cell, lengths = CELLS[name], jnp.array([6, 3])
    layer = abstract(
        lambda: nnx.RNN(rnn.Cell(cell, INPUT, rngs=nnx.Rngs(0)), return_carry=True)
    )

    def run(m, xs, n):
        p = m.cell.get_params()
        return m(xs, seq_lengths=n), rnnjax.unroll(cell, p, xs, seq_lengths=n)

    (carry, ys), (ref_carry, ref_ys) = on(layer, run, data(), lengths)
    # Flax does not zero the padded outputs; compare the valid steps.
    assert_trees_close(carry, flax_form(ref_carry), name)
    assert_close(ys * valid(lengths, 6), ref_ys, name)


def test_cell_inside_nnx_bidirectional():
    cell, lengths = CELLS["gru"], jnp.array([6, 4])
    layer = abstract(
        lambda: nnx.Bidirectional(
            nnx.RNN(rnn.Cell(cell, INPUT, rngs=nnx.Rngs(0))),
            nnx.RNN(rnn.Cell(cell, INPUT, rngs=nnx.Rngs(1))),
        )
    )

    def run(m, xs, n):
        fwd = m.forward_rnn.cell.get_params()
        bwd = m.backward_rnn.cell.get_params()
        want = jnp.concatenate(
            [
                rnnjax.unroll(cell, fwd, xs, seq_lengths=n)[1],
                rnnjax.unroll(cell, bwd, xs, seq_lengths=n, reverse=True)[1],
            ],
            axis=-1,
        )
        return m(xs, seq_lengths=n), want

    ys, want = on(layer, run, data(), lengths)
    assert_close(ys * valid(lengths, 6), want, "bidirectional")


def test_cell_carry_init():
    module = rnn.Cell(CELLS["lstm"], INPUT, rngs=nnx.Rngs(0))
    carry = module.initialize_carry(
        (2, INPUT), nnx.Rngs(carry=1), nnx.initializers.constant(0.5)
    )
    assert shapes(carry) == shapes(flax_form(CELLS["lstm"].initial_carry((2,))))
    assert isinstance(carry, tuple) and len(carry) == 2  # Flax's (c, h)
    assert all(np.all(leaf == 0.5) for leaf in jax.tree.leaves(carry))
    with pytest.raises(ValueError, match="rngs"):
        module.initialize_carry((2, INPUT), carry_init=nnx.initializers.ones)


def test_rnnjax_params_load_into_the_cell():
    cell = CELLS["mgu"]
    module = rnn.Cell(cell, INPUT, rngs=nnx.Rngs(0))
    params = randomize(cell.init(jax.random.key(5), INPUT))
    module.set_params(params)
    x, carry = data()[:, 0], cell.initial_carry((2,))
    assert_trees_close(module(carry, x), cell.step(params, carry, x), "rnnjax -> nnx")


def test_cell_rejects_params_of_another_shape_and_non_cells():
    module = rnn.Cell(CELLS["lstm"], INPUT, rngs=nnx.Rngs(0))
    module.set_params(CELLS["lstm"].init(jax.random.key(0), INPUT + 1))
    with pytest.raises(ValueError, match="input features"):
        module(CELLS["lstm"].initial_carry((2,)), data()[:, 0])
    with pytest.raises(TypeError, match="rnnjax cell"):
        rnn.Cell(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), INPUT, rngs=nnx.Rngs(0))


@pytest.mark.parametrize(
    ("shorthand", "factory", "options"),
    [
        (rnn.MUT1Cell, rnnjax.mut1, {"embed_input": True}),
        (rnn.MUT2Cell, rnnjax.mut2, {"embed_input": True}),
        (rnn.MUT3Cell, rnnjax.mut3, {}),
    ],
)
def test_shorthands_build_the_cell(shorthand, factory, options):
    module = nnx.eval_shape(lambda: shorthand(INPUT, 5, rngs=nnx.Rngs(0), **options))
    assert isinstance(module, rnn.Cell) and module.cell == factory(5, **options)
    assert isinstance(module, shorthand) and module.in_features == INPUT


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
    """Flax's defaults, the rnnjax options as further keywords, parameters in
    ``param_dtype``."""
    make = lambda **kw: shorthand(INPUT, 5, rngs=nnx.Rngs(0), **options, **kw)
    module = nnx.eval_shape(make)
    assert isinstance(module, rnn.FlaxCell) and module.cell.hidden_size == 5
    assert {k: getattr(module.cell, k) for k in expected} == expected
    half = nnx.eval_shape(lambda: make(param_dtype=jnp.bfloat16))
    assert {p.dtype for p in jax.tree.leaves(half.get_params())} == {
        jnp.dtype("bfloat16")
    }


# ------------------------------------------------------------------------------- RNN


@pytest.mark.parametrize("case", RNN_CASES)
def test_rnn_equals_stack_apply(case):
    options = RNN_CASES[case]
    layer = abstract(lambda: rnn.RNN(**options, in_features=INPUT, rngs=nnx.Rngs(0)))
    xs, lengths = data(), jnp.array([6, 2])
    if layer.stack.time_major:
        xs = jnp.swapaxes(xs, 0, 1)
    carry0 = jax.tree.map(lambda c: c + 0.1, layer.stack.initial_carry((2,)))
    assert shapes(layer.initial_carry((2,))) == shapes(flax_form(carry0))
    resets = jnp.zeros(xs.shape[:-1], bool).at[3].set(True)

    def run(m, xs, carry, n, resets):
        kw = dict(seq_lengths=n, resets=resets)
        want = m.stack.apply(m.get_params(), xs, carry=carry, options=m.options, **kw)
        got = m(xs, carry=flax_form(carry), return_carry=True, **kw)
        return got, flax_form(want)

    got, want = on(layer, run, xs, carry0, lengths, resets)
    assert_trees_close(got, want, case)


def test_rnn_runs_a_composed_stack():
    layer = abstract(lambda: rnn.RNN(COMPOSED, INPUT, rngs=nnx.Rngs(0)))
    assert layer.stack is COMPOSED
    xs, key = data(), jax.random.key(3)

    def run(m, xs, key):
        return m(xs, rngs=key), COMPOSED.apply(
            m.get_params(), xs, key=key, training=True
        )[1]

    ys, want = on(layer, run, xs, key)
    assert_close(ys, want, "composed stack")
    with pytest.raises(ValueError, match=r"cells: an rnnjax\.Stack brings its own"):
        rnn.RNN(COMPOSED, INPUT, dropout=0.1, rngs=nnx.Rngs(0))


def test_rnn_options_reach_the_stack():
    cells = [rnnjax.gru(HIDDEN), rnnjax.lstm(5)]
    options = dict(
        bidirectional=True,
        dropout=0.1,
        input_dropout=0.2,
        recurrent_dropout=0.3,
        time_major=True,
    )
    layer = nnx.eval_shape(lambda: rnn.RNN(cells, INPUT, **options, rngs=nnx.Rngs(0)))
    assert layer.stack == rnnjax.stack(cells, **options)
    layer = nnx.eval_shape(
        lambda: rnn.RNN(rnnjax.mgu(3), INPUT, num_layers=3, rngs=nnx.Rngs(0))
    )
    assert layer.stack.num_layers == 3


def test_rnn_params_are_stack_init_and_round_trip():
    layer = rnn.RNN(
        rnnjax.gru(HIDDEN), INPUT, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0)
    )
    paths = {path for path, _ in nnx.to_flat_state(nnx.state(layer, nnx.Param))}
    assert ("params", 1, 0, "w_x") in paths and all(p[0] == "params" for p in paths)
    assert shapes(layer.get_params()) == shapes(
        layer.stack.init(jax.random.key(0), INPUT)
    )
    xs = data()
    # nnx -> rnnjax
    want = layer.stack.apply(layer.get_params(), xs)[1]
    got = on(layer, lambda m, xs: m(xs), xs)
    assert_close(got, want, "nnx -> rnnjax")
    # rnnjax -> nnx
    rnnjax_params = randomize(layer.stack.init(jax.random.key(7), INPUT))
    layer.set_params(rnnjax_params)
    got = on(layer, lambda m, xs: m(xs), xs)
    assert_close(got, layer.stack.apply(rnnjax_params, xs)[1], "rnnjax -> nnx")
    with pytest.raises(ValueError, match="structure"):
        layer.set_params(rnnjax_params[:1])


def test_rnn_dropout_follows_train_and_eval():
    layer = abstract(lambda: rnn.RNN(**DROPOUT, in_features=INPUT, rngs=nnx.Rngs(0)))
    xs, key = data(), jax.random.key(3)
    assert layer.deterministic is False  # NNX modules start in training mode

    def run(m, xs, key):
        p = m.get_params()
        return (
            m(xs, rngs=key),  # an explicit key for this call
            m.stack.apply(p, xs, key=key, training=True)[1],
            m(xs, deterministic=True),
            m.stack.apply(p, xs)[1],
        )

    ys, want, ys_eval, want_eval = on(layer, run, xs, key)
    assert_close(ys, want, "dropout = Stack.apply(key)")
    assert_close(ys_eval, want_eval, "deterministic=True")
    assert not np.allclose(ys, ys_eval)

    layer.eval()
    assert layer.deterministic is True
    assert_close(on(layer, lambda m, xs: m(xs), xs), want_eval, ".eval()")
    layer.train()
    assert layer.deterministic is False
    view = nnx.view(layer, deterministic=True)
    assert view.deterministic is True and layer.deterministic is False


def test_rnn_dropout_stream_is_reproducible_under_jit():
    make = lambda: rnn.RNN(
        **DROPOUT, in_features=INPUT, rngs=nnx.Rngs(params=0, dropout=5)
    )
    a, b = make(), make()
    call = nnx.jit(lambda m, xs: m(xs))
    xs = data()
    first, second = call(a, xs), call(a, xs)
    assert not np.allclose(first, second)  # the stream advances
    np.testing.assert_array_equal(first, call(b, xs))  # same seeds, same masks
    np.testing.assert_array_equal(second, call(b, xs))


def test_rnn_dropout_needs_a_flag_and_an_rng():
    layer = nnx.eval_shape(
        lambda: rnn.RNN(
            **DROPOUT, in_features=INPUT, deterministic=None, rngs=nnx.Rngs(0)
        )
    )
    with pytest.raises(ValueError, match="deterministic"):
        jax.eval_shape(lambda xs: layer(xs), data())
    no_dropout = rnn.RNN(rnnjax.gru(HIDDEN), INPUT, rngs=nnx.Rngs(0))
    assert no_dropout.rngs is None
    shape = jax.eval_shape(lambda xs: no_dropout(xs, deterministic=False), data())
    assert shape.shape == (2, 6, HIDDEN)


# -------------------------------------------------------------------------- training


class Regressor(nnx.Module):
    """An LSTM layer and a linear read-out of its last output."""

    def __init__(self, rngs):
        self.rnn = rnn.RNN(rnnjax.lstm(32), 2, rngs=rngs)
        self.out = nnx.Linear(32, 1, rngs=rngs)

    def __call__(self, xs):
        return self.out(self.rnn(xs)[:, -1])


def test_nnx_model_learns_the_adding_problem():
    model = Regressor(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    loss = lambda model, xs, ys: jnp.mean((model(xs) - ys) ** 2)
    graphdef, state = nnx.split((model, optimizer))

    def train(state, key):  # 400 steps in one compiled scan, as train_adding
        def step(state, k):
            model, optimizer = nnx.merge(graphdef, state)
            optimizer.update(model, nnx.grad(loss)(model, *adding_problem(k, 64)))
            return nnx.state((model, optimizer)), None

        return jax.lax.scan(step, state, jax.random.split(key, 400))[0]

    nnx.update((model, optimizer), fast(train)(state, jax.random.key(1)))
    xs, ys = adding_problem(jax.random.key(99), 512)
    final = float(on(model, loss, xs, ys))
    trivial = float(jnp.mean((ys - 1.0) ** 2))
    assert final < 0.05 * trivial, (final, trivial)  # reached about 0.007 * trivial

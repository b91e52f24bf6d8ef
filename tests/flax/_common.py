"""Helpers shared by the Flax tests."""

import jax
import jax.numpy as jnp

import rnnjax
from tests.conftest import assert_close, randomize

INPUT, HIDDEN = 3, 4

# One of each cell family, and the options that change its parameters or path.
CELLS = {
    "lstm": rnnjax.lstm(HIDDEN),
    "lstm_peephole_ln": rnnjax.lstm(HIDDEN, peephole=True, layer_norm=True),
    "lstm_proj": rnnjax.lstm(HIDDEN, proj_size=2),
    "gru": rnnjax.gru(HIDDEN),
    "gru_reset_before": rnnjax.gru(HIDDEN, reset_after=False),
    "simple": rnnjax.simple_rnn(HIDDEN),
    "mgu": rnnjax.mgu(HIDDEN),
    "mut1": rnnjax.mut1(HIDDEN, embed_input=True),
    "mut3": rnnjax.mut3(HIDDEN),
    "slstm": rnnjax.slstm(HIDDEN, num_heads=2),
    "mlstm": rnnjax.mlstm(HIDDEN, num_heads=2),
}

# Stacks: 2 bidirectional layers, mixed cells per layer, time-major on the scan.
RNN_CASES = {
    "lstm_2_layers_bidirectional": dict(
        cells=rnnjax.lstm(HIDDEN), num_layers=2, bidirectional=True
    ),
    "mixed_per_layer": dict(cells=[rnnjax.gru(HIDDEN), rnnjax.lstm(5, proj_size=2)]),
    "mgu_time_major_scan": dict(
        cells=rnnjax.mgu(HIDDEN),
        time_major=True,
        options=rnnjax.UnrollOptions(impl="scan"),
    ),
}

# A composed stack: a summed bidirectional layer under a one-way layer.
COMPOSED = rnnjax.Stack(
    (
        rnnjax.Bidirectional(
            rnnjax.Layer(rnnjax.lstm(HIDDEN)),
            rnnjax.Layer(rnnjax.gru(HIDDEN)),
            merge=jnp.add,
        ),
        rnnjax.Layer(rnnjax.mgu(HIDDEN), recurrent_dropout=0.2),
    ),
    dropout=0.3,
)


# Every kind of dropout, between 2 bidirectional layers.
DROPOUT = dict(
    cells=rnnjax.lstm(HIDDEN),
    num_layers=2,
    bidirectional=True,
    dropout=0.3,
    input_dropout=0.2,
    recurrent_dropout=0.25,
)

# The tests compile many small programs; XLA's cheaper backend passes cut the time
# (as tests/kernels does).
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def fast(f):
    """``f`` jit-compiled with :data:`FAST_COMPILE`, run once."""

    def run(*args):
        return jax.jit(f).lower(*args).compile(FAST_COMPILE)(*args)

    return run


def random_init(init, *args, **kwargs):
    """The variables ``init(key, *args, **kwargs)`` would make, traced only (no
    compile), filled with normal noise (so every parameter is exercised)."""
    return randomize(jax.eval_shape(lambda: init(jax.random.key(0), *args, **kwargs)))


def data(batch=(2,), steps=6, seed=1, features=INPUT):
    return jax.random.normal(jax.random.key(seed), (*batch, steps, features))


def valid(lengths, steps):
    """``(B, T, 1)``: the step is inside its sequence."""
    return (jnp.arange(steps)[None, :] < lengths[:, None])[..., None]


def assert_trees_close(a, b, what, tol=1e-5):
    assert jax.tree.structure(a) == jax.tree.structure(b), what
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert_close(x, y, what, tol)


def flax_form(tree):
    """``tree`` with each `rnnjax.LSTMState` as Flax's tuple ``(c, h)``: what the
    Flax modules return where rnnjax returns an ``LSTMState``."""
    is_state = lambda x: isinstance(x, rnnjax.LSTMState)
    as_tuple = lambda x: tuple(v for v in x if v is not None) if is_state(x) else x
    return jax.tree.map(as_tuple, tree, is_leaf=is_state)


def shapes(tree):
    return jax.tree.map(jnp.shape, tree)


def adding_problem(key, batch, steps=10):
    """The adding problem (Hochreiter & Schmidhuber 1997): inputs ``(B, T, 2)``,
    values in [0, 1] and a marker on two steps; the target is the sum of the two
    marked values. Predicting the mean 1.0 has MSE 1/6."""
    kv, km = jax.random.split(key)
    values = jax.random.uniform(kv, (batch, steps))
    marks = jax.vmap(lambda k: jax.random.choice(k, steps, (2,), replace=False))(
        jax.random.split(km, batch)
    )
    marker = jax.nn.one_hot(marks, steps).sum(1)
    return jnp.stack([values, marker], -1), (values * marker).sum(-1, keepdims=True)


def train_adding(loss, params, tx, steps=400, batch=64):
    """``steps`` Adam steps (one compiled ``lax.scan``) on fresh adding-problem
    batches; returns ``(params, test_loss, trivial_loss)``."""
    import optax

    def train(params, key):
        def step(carry, k):
            params, state = carry
            grads = jax.grad(loss)(params, *adding_problem(k, batch))
            updates, state = tx.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        keys = jax.random.split(key, steps)
        return jax.lax.scan(step, (params, tx.init(params)), keys)[0][0]

    params = fast(train)(params, jax.random.key(1))
    xs, ys = adding_problem(jax.random.key(99), 512)
    test = float(fast(loss)(params, xs, ys))
    return params, test, float(jnp.mean((ys - 1.0) ** 2))

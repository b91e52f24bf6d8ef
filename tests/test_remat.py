"""``UnrollOptions(remat=...)``: the values and gradients of no remat, less memory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from tests.conftest import assert_close, randomize
from tests.kernels._compare import jit_fast, random_like

# Their time is compiling small programs: XLA's cheaper passes (conftest).
pytestmark = pytest.mark.usefixtures("fast_compile")

CELLS = {
    "lstm": lambda: rnnjax.lstm(6),  # fused kernel inside each chunk
    "gru_cho": lambda: rnnjax.gru(6, reset_after=False),  # plain scan
    "min_gru": lambda: rnnjax.min_gru(6),  # associative scan inside each chunk
    "clockwork": lambda: rnnjax.clockwork_rnn(6, 3),  # integer step counter
    "conv_lstm": lambda: rnnjax.conv_lstm(2, kernel_size=3, spatial_shape=(5,)),
}
REMATS = [("step", None), ("chunk", None), ("chunk", 1), ("chunk", 4), ("chunk", 50)]
# Each variant compiles its own program: the cheap ones cover the other cells.
SHORT = [("step", None), ("chunk", 4)]
T = 11


def _inputs(name, cell):
    shape = (2, T, 5, 3) if name == "conv_lstm" else (2, T, 3)
    xs = jnp.asarray(np.random.default_rng(1).standard_normal(shape), jnp.float32)
    params = randomize(cell.init(jax.random.key(0), shape[-1]), scale=0.4)
    return params, xs


def _objective(cell, remat, chunk_size, **kwargs):
    """A scalar of every float output and final carry leaf, with random weights so
    that no cotangent is uniform."""

    def f(params, xs, carry):
        final, ys = rnnjax.unroll(
            cell,
            params,
            xs,
            carry=carry,
            **kwargs,
            options=rnnjax.UnrollOptions(remat=remat, chunk_size=chunk_size),
        )
        leaves = [ys] + [c for c in jax.tree.leaves(final) if c.dtype.kind == "f"]
        weights = random_like(leaves, 7)
        return sum(jnp.sum(w * leaf) for w, leaf in zip(weights, leaves, strict=True))

    return f


@pytest.mark.parametrize("name", sorted(CELLS))
def test_remat_equals_no_remat(name):
    cell = CELLS[name]()
    params, xs = _inputs(name, cell)
    batch = xs.shape[:1] + (xs.shape[2:-1] if name == "conv_lstm" else ())
    carry = random_like(cell.initial_carry(batch), 3)
    if name == "clockwork":
        carry = cell.initial_carry(batch)
    options = dict(
        seq_lengths=jnp.array([T, 6]),
        reverse=True,
        resets=jnp.zeros((2, T), bool).at[0, 4].set(True).at[1, 2].set(True),
    )
    argnums = (0, 1) if name == "clockwork" else (0, 1, 2)
    f = _objective(cell, None, None, **options)
    ref = jit_fast(jax.value_and_grad(f, argnums))(params, xs, carry)
    for remat, size in REMATS if name == "lstm" else SHORT:
        f = _objective(cell, remat, size, **options)
        got = jit_fast(jax.value_and_grad(f, argnums))(params, xs, carry)
        for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(ref), strict=True):
            assert_close(g, r, f"{name} remat={remat} chunk_size={size}")


def test_remat_without_options_and_forward_values():
    cell = rnnjax.lstm(5)
    params, xs = _inputs("lstm", cell)
    ref = rnnjax.unroll(cell, params, xs)
    for remat, size in REMATS:
        got = rnnjax.unroll(
            cell, params, xs, options=rnnjax.UnrollOptions(remat=remat, chunk_size=size)
        )
        for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(ref), strict=True):
            assert_close(g, r, f"remat={remat} chunk_size={size}")


def _peak_bytes(remat, num_steps=1024, hidden=32):
    cell = rnnjax.lstm(hidden)
    params = cell.init(jax.random.key(0), hidden)
    xs = jax.ShapeDtypeStruct((1, num_steps, hidden), jnp.float32)

    def loss(params, xs):
        return jnp.mean(
            rnnjax.unroll(cell, params, xs, options=rnnjax.UnrollOptions(remat=remat))[
                1
            ]
            ** 2
        )

    m = jax.jit(jax.grad(loss)).lower(params, xs).compile().memory_analysis()
    return m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes


def test_remat_lowers_peak_memory():
    # The compiled executable's own buffer assignment: deterministic, not a timing.
    none, step, chunk = (_peak_bytes(r) for r in (None, "step", "chunk"))
    assert step < 0.5 * none, (none, step)
    assert chunk < 0.5 * none, (none, chunk)


def test_stack_passes_remat_to_every_layer():
    model = rnnjax.stack(rnnjax.lstm(4), num_layers=2)
    params = model.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 9, 3))

    def loss(params, options=None):
        return jnp.sum(model.apply(params, xs, options=options)[1] ** 2)

    ref = jit_fast(jax.grad(loss))(params)
    chunked = rnnjax.UnrollOptions(remat="chunk", chunk_size=4)
    got = jit_fast(jax.grad(lambda p: loss(p, chunked)))(params)
    for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(ref), strict=True):
        assert_close(g, r, "stack remat")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(remat="all"), ValueError, "remat: expected one of"),
        (dict(remat="step", chunk_size=4), ValueError, "chunk_size: only used"),
        (dict(remat="chunk", chunk_size=0), ValueError, "chunk_size: expected"),
        (dict(remat="chunk", chunk_size=2.0), TypeError, "chunk_size: expected"),
    ],
)
def test_bad_remat_arguments(kwargs, error, match):
    cell = rnnjax.lstm(3)
    params = cell.init(jax.random.key(0), 2)
    with pytest.raises(error, match=match):
        options = rnnjax.UnrollOptions(**kwargs)
        rnnjax.unroll(cell, params, jnp.zeros((1, 4, 2)), options=options)

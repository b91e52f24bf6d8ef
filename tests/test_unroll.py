"""``unroll`` against a Python loop over ``cell.step`` (lengths, reverse, resets)."""

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnjax
from tests.conftest import randomize

# Their time is compiling small programs: XLA's cheaper passes (conftest).
pytestmark = pytest.mark.usefixtures("fast_compile")

CELLS = {
    "simple_rnn": lambda: rnnjax.simple_rnn(4),
    "lstm": lambda: rnnjax.lstm(4),
    "lstm_fgr": lambda: rnnjax.lstm(4, full_gate_recurrence=True, peephole=True),
    "lstmp": lambda: rnnjax.lstm(4, proj_size=2),
    "gru": lambda: rnnjax.gru(4),
    "gru_cho": lambda: rnnjax.gru(4, reset_after=False),
    "mgu": lambda: rnnjax.mgu(4),
    "mut3": lambda: rnnjax.mut3(4),
}
INPUT = 3


def loop_reference(cell, params, xs, carry0, lengths, reverse, resets):
    """Per batch element, a plain Python loop over ``cell.step`` on one sequence."""
    batch_shape, num_steps = xs.shape[:-2], xs.shape[-2]
    ys = np.zeros((*batch_shape, num_steps, cell.output_size), np.float32)
    finals = []
    for idx in np.ndindex(*batch_shape):
        first = jax.tree.map(lambda c, i=idx: c[i], carry0)
        carry = first
        n = num_steps if lengths is None else int(np.clip(lengths[idx], 0, num_steps))
        steps = range(n - 1, -1, -1) if reverse else range(n)
        for t in steps:
            if resets is not None and resets[idx][t]:
                carry = first
            carry, y = cell.step(params, carry, xs[idx][t])
            ys[idx][t] = np.asarray(y)
        finals.append(carry)
    stacked = jax.tree.map(
        lambda *leaves: np.stack(leaves).reshape(*batch_shape, *leaves[0].shape),
        *finals,
    )
    return stacked, ys


def check_against_loop(name, batch_shape, num_steps, lengths, reverse, resets, seed):
    cell = CELLS[name]()
    params = randomize(cell.init(jax.random.key(seed), INPUT), seed)
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((*batch_shape, num_steps, INPUT)).astype(np.float32)
    carry0 = randomize(cell.initial_carry(batch_shape), seed + 1)
    carry, ys = rnnjax.unroll(
        cell,
        params,
        jnp.asarray(xs),
        carry=carry0,
        seq_lengths=lengths,
        reverse=reverse,
        resets=resets,
    )
    ref_carry, ref_ys = loop_reference(
        cell, params, xs, carry0, lengths, reverse, resets
    )
    np.testing.assert_allclose(ys, ref_ys, rtol=2e-5, atol=2e-5)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5),
        carry,
        ref_carry,
    )


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("reverse", [False, True])
def test_matches_loop_with_lengths_and_resets(name, reverse):
    lengths = np.array([[5, 0, 2], [3, 5, 1]], np.int32)
    resets = np.zeros((2, 3, 5), bool)
    resets[0, 0, 2] = resets[1, 1, 4] = resets[1, 1, 0] = True
    check_against_loop(name, (2, 3), 5, lengths, reverse, resets, seed=1)


@pytest.mark.parametrize("name", ["lstm", "gru_cho"])
def test_matches_loop_unbatched_without_options(name):
    check_against_loop(name, (), 6, None, False, None, seed=2)
    check_against_loop(name, (), 6, None, True, None, seed=3)


@st.composite
def unroll_cases(draw):
    batch_shape = tuple(draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3)))
    num_steps = draw(st.integers(1, 5))
    lengths = None
    if draw(st.booleans()):
        lengths = draw(
            hnp.arrays(np.int32, batch_shape, elements=st.integers(0, num_steps))
        )
    resets = None
    if draw(st.booleans()):
        resets = draw(hnp.arrays(np.bool_, (*batch_shape, num_steps)))
    return batch_shape, num_steps, lengths, draw(st.booleans()), resets


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=unroll_cases(), name=st.sampled_from(["lstm", "gru", "mgu"]))
def test_matches_loop_hypothesis(case, name):
    batch_shape, num_steps, lengths, reverse, resets = case
    check_against_loop(name, batch_shape, num_steps, lengths, reverse, resets, seed=4)


def test_lengths_are_clipped():
    cell = rnnjax.gru(4)
    params = cell.init(jax.random.key(0), INPUT)
    xs = jnp.ones((2, 5, INPUT))
    clipped = rnnjax.unroll(cell, params, xs, seq_lengths=jnp.array([9, -3]))
    exact = rnnjax.unroll(cell, params, xs, seq_lengths=jnp.array([5, 0]))
    jax.tree.map(np.testing.assert_array_equal, clipped, exact)


def test_time_major_equals_batch_major():
    cell = rnnjax.lstm(4)
    params = cell.init(jax.random.key(0), INPUT)
    xs = jax.random.normal(jax.random.key(1), (2, 5, INPUT))
    lengths = jnp.array([5, 3])
    resets = jnp.zeros((2, 5), bool).at[0, 2].set(True)
    carry_b, ys_b = rnnjax.unroll(cell, params, xs, seq_lengths=lengths, resets=resets)
    carry_t, ys_t = rnnjax.unroll(
        cell,
        params,
        jnp.swapaxes(xs, 0, 1),
        seq_lengths=lengths,
        resets=resets.T,
        time_major=True,
    )
    np.testing.assert_allclose(ys_b, jnp.swapaxes(ys_t, 0, 1), rtol=1e-6)
    jax.tree.map(np.testing.assert_array_equal, carry_b, carry_t)


def test_unroll_factor_does_not_change_results():
    cell = rnnjax.lstm(4)
    params = cell.init(jax.random.key(0), INPUT)
    xs = jax.random.normal(jax.random.key(1), (2, 7, INPUT))
    base = rnnjax.unroll(cell, params, xs)
    for factor in (2, 3, 8):
        other = rnnjax.unroll(
            cell, params, xs, options=rnnjax.UnrollOptions(unroll=factor)
        )
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
            base,
            other,
        )


def test_options_is_one_value():
    """The unroll options come as one ``UnrollOptions``; the four old keywords are
    gone and anything else in ``options`` is an error naming it."""
    cell = rnnjax.lstm(4)
    params = cell.init(jax.random.key(0), INPUT)
    xs = jnp.ones((2, 3, INPUT))
    with pytest.raises(TypeError, match=r"options: expected an rnnjax\.UnrollOptions"):
        rnnjax.unroll(cell, params, xs, options={"impl": "scan"})
    for old in ("impl", "unroll", "remat", "chunk_size"):
        with pytest.raises(TypeError, match=old):
            rnnjax.unroll(cell, params, xs, **{old: None})


def test_check_lengths_with_checkify():
    from jax.experimental import checkify

    cell = rnnjax.simple_rnn(4)
    params = cell.init(jax.random.key(0), INPUT)
    xs = jnp.ones((2, 5, INPUT))

    def f(lengths):
        rnnjax.check_lengths(lengths, xs.shape[1])
        return rnnjax.unroll(cell, params, xs, seq_lengths=lengths)[1]

    checked = checkify.checkify(jax.jit(f))
    err, _ = checked(jnp.array([5, 0]))
    err.throw()  # fine
    err, _ = checked(jnp.array([6, 1]))
    with pytest.raises(checkify.JaxRuntimeError, match="seq_lengths"):
        err.throw()

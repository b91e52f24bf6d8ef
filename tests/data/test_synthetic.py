"""The synthetic tasks against the definitions of Hochreiter & Schmidhuber (1997)."""

import jax
import numpy as np
import pytest

from rnnjax.data import (
    TEMPORAL_ORDER_CLASSES,
    Batch,
    adding,
    copy,
    long_time_lag,
    multiplication,
    parity,
    temporal_order,
)

TASKS = {
    "adding": (adding, 40, {}),
    "multiplication": (multiplication, 40, {}),
    "temporal_order_2": (temporal_order, 40, {"num_relevant": 2}),
    "temporal_order_3": (temporal_order, 40, {"num_relevant": 3}),
    "long_time_lag": (long_time_lag, 6, {}),
    "copy": (copy, 5, {"delay": 4}),
    "parity": (parity, 9, {}),
}


def draw(name, seed, batch_size=16):
    fn, length, kw = TASKS[name]
    return fn(seed, batch_size, length, **kw)


def assert_same(a, b):
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", TASKS)
def test_layout(name):
    b = draw(name, 0)
    assert isinstance(b, Batch)
    assert b.inputs.ndim == 3 and b.inputs.dtype == np.float32
    B, T, _ = b.inputs.shape
    assert b.mask.shape == (B, T) and b.mask.dtype == np.float32
    assert set(np.unique(b.mask)) <= {0.0, 1.0}
    if b.targets.dtype == np.float32:
        assert b.targets.shape == (B, T, 1)
    else:
        assert b.targets.dtype == np.int32 and b.targets.shape == (B, T)
    # Padding comes after the last scored step and is all zero.
    lengths = b.seq_lengths()
    pad = np.arange(T)[None, :] >= lengths[:, None]
    assert not b.inputs[pad].any() and not b.mask[pad].any()


@pytest.mark.parametrize("name", TASKS)
def test_deterministic_from_seed_and_key(name):
    assert_same(draw(name, 7), draw(name, 7))
    assert_same(draw(name, jax.random.key(3)), draw(name, jax.random.key(3)))
    assert_same(draw(name, jax.random.PRNGKey(3)), draw(name, jax.random.PRNGKey(3)))
    assert not np.array_equal(draw(name, 7).inputs, draw(name, 8).inputs)
    assert_same(draw(name, 7), draw(name, np.int64(7)))
    assert_same(draw(name, 7), draw(name, jax.numpy.asarray(7)))
    k1, k2 = jax.random.split(jax.random.key(0))
    assert not np.array_equal(draw(name, k1).inputs, draw(name, k2).inputs)
    g = np.random.default_rng(0)  # a Generator advances: two draws differ
    assert not np.array_equal(draw(name, g).inputs, draw(name, g).inputs)


def marked(name, length=30, batch_size=4000, variable_length=True):
    fn = adding if name == "adding" else multiplication
    return fn(0, batch_size, length, variable_length=variable_length)


@pytest.mark.parametrize("name", ["adding", "multiplication"])
@pytest.mark.parametrize("variable_length", [True, False])
def test_marked_pairs(name, variable_length):
    length = 30
    b = marked(name, length, variable_length=variable_length)
    values, markers = b.inputs[..., 0], b.inputs[..., 1]
    lengths = b.seq_lengths()
    rows = np.arange(len(lengths))
    if variable_length:
        assert b.inputs.shape[1] == length + length // 10
        assert lengths.min() == length and lengths.max() == length + length // 10
    else:
        assert (lengths == length).all()
    lo = -1.0 if name == "adding" else 0.0
    valid = np.arange(b.inputs.shape[1])[None, :] < lengths[:, None]
    assert values[valid].min() >= lo and values[valid].max() <= 1.0
    assert values[valid].min() < lo + 0.05 and values[valid].max() > 0.95
    # Exactly two markers 1; first and final pair -1 unless marked; others 0.
    assert ((markers == 1).sum(axis=1) == 2).all()
    assert (markers[rows, lengths - 1] == -1).all()
    assert np.isin(markers[:, 0], [-1, 1]).all()
    inner = markers.copy()
    inner[:, 0] = 0
    inner[rows, lengths - 1] = 0
    assert set(np.unique(inner)) == {0.0, 1.0}
    pos = np.sort(np.nonzero(markers == 1)[1].reshape(-1, 2), axis=1)
    # X1 in the first ten pairs, X2 among the first length//2 - 1 still unmarked
    # pairs: with X1 inside that window, X2 reaches position length//2 - 1.
    assert pos[:, 0].max() < 10 and pos[:, 1].max() <= length // 2 - 1
    assert set(pos.ravel()) == set(range(length // 2))  # both windows reached
    # The first pair, when marked, carries 0 (adding) or 1 (multiplication).
    first_marked = markers[:, 0] == 1
    assert 0 < first_marked.sum() < len(rows)
    assert (values[first_marked, 0] == (0.0 if name == "adding" else 1.0)).all()
    # The target is the defined function of the two marked values, at the end only.
    x = np.where(markers == 1, values.astype(np.float64), 0.0)
    if name == "adding":
        expected = 0.5 + x.sum(axis=1) / 4.0
    else:
        expected = np.prod(np.where(markers == 1, values, 1.0).astype(np.float64), 1)
    np.testing.assert_allclose(b.targets[rows, lengths - 1, 0], expected, rtol=1e-6)
    assert (b.mask.sum(axis=1) == 1).all() and (b.mask[rows, lengths - 1] == 1).all()
    assert (b.targets[..., 0][b.mask == 0] == 0).all()


def test_adding_second_marker_window():
    b = adding(1, 4000, 100, variable_length=False)
    markers = b.inputs[..., 1]
    pos = np.nonzero(markers == 1)[1].reshape(-1, 2)
    late = pos.max(axis=1)
    # X2 is among the first T/2 - 1 unmarked pairs; X1 (< 10) is one of the first
    # T/2 pairs, so X2's last possible 0-based position is T/2 - 1.
    assert late.max() == 100 // 2 - 1
    for x2_pos in range(10, 100 // 2):
        assert (late == x2_pos).any()
    assert (pos.min(axis=1) < 10).all()
    assert b.targets.min() >= 0.0 and b.targets.max() <= 1.0


PAPER_CLASSES = {
    "XX": "Q", "XY": "R", "YX": "S", "YY": "U",
    "XXX": "Q", "XXY": "R", "XYX": "S", "XYY": "U",
    "YXX": "V", "YXY": "A", "YYX": "B", "YYY": "C",
}  # fmt: skip


@pytest.mark.parametrize("num_relevant", [2, 3])
def test_temporal_order(num_relevant):
    b = temporal_order(0, 2000, 100, num_relevant=num_relevant)
    symbols_of = np.array(list("abcdBEXY"))
    lengths = b.seq_lengths()
    assert lengths.min() == 100 and lengths.max() == 110
    windows = {2: [(10, 20), (50, 60)], 3: [(10, 20), (33, 43), (66, 76)]}
    seen = [set() for _ in windows[num_relevant]]
    for row, n in enumerate(lengths):
        onehot = b.inputs[row, :n]
        assert (onehot.sum(axis=1) == 1).all()
        seq = "".join(symbols_of[onehot.argmax(axis=1)])
        assert seq[0] == "E" and seq[-1] == "B"
        assert set(seq[1:-1]) <= set("abcdXY")
        relevant = [(i + 1, c) for i, c in enumerate(seq) if c in "XY"]  # 1-based
        assert len(relevant) == num_relevant
        spans = zip(relevant, windows[num_relevant], seen, strict=True)
        for (t, _), (lo, hi), s in spans:
            assert lo <= t <= hi
            s.add(t)
        pattern = "".join(c for _, c in relevant)
        label = b.targets[row, n - 1]
        assert TEMPORAL_ORDER_CLASSES[num_relevant][label] == PAPER_CLASSES[pattern]
    for (lo, hi), s in zip(windows[num_relevant], seen, strict=True):
        assert s == set(range(lo, hi + 1))
    counts = np.bincount(b.targets[b.mask == 1], minlength=2**num_relevant)
    assert (counts > 0).all() and len(counts) == 2**num_relevant


def test_long_time_lag():
    p = 6
    b = long_time_lag(0, 200, p)
    assert b.inputs.shape == (200, p, p + 1) and (b.mask == 1).all()
    x, y = p - 1, p  # a_p = x, a_{p+1} = y
    middle = list(range(p - 1))  # a_1 .. a_{p-1}
    firsts = set()
    for row in range(200):
        inputs = list(b.inputs[row].argmax(axis=1))
        full = [*inputs, int(b.targets[row, -1])]
        assert full in ([y, *middle, y], [x, *middle, x])
        assert list(b.targets[row]) == full[1:]
        firsts.add(full[0])
    assert firsts == {x, y}


def test_copy():
    length, delay, k = 5, 4, 3
    b = copy(0, 64, length, delay=delay, num_symbols=k)
    seq = b.inputs.argmax(axis=-1)
    assert b.inputs.shape == (64, 2 * length + delay, k + 2)
    assert (seq[:, :length] < k).all()
    assert (seq[:, length : length + delay - 1] == k).all()  # blanks
    assert (seq[:, length + delay - 1] == k + 1).all()  # delimiter
    assert (seq[:, length + delay :] == k).all()
    np.testing.assert_array_equal(b.targets[:, length + delay :], seq[:, :length])
    assert (b.targets[:, : length + delay] == k).all()
    assert (b.mask[:, length + delay :] == 1).all() and b.mask.sum() == 64 * length


def test_parity():
    b = parity(0, 256, 9)
    bits = b.inputs[..., 0]
    assert set(np.unique(bits)) == {0.0, 1.0}
    np.testing.assert_array_equal(b.targets[:, -1], bits.sum(axis=1).astype(int) % 2)
    assert (b.mask[:, -1] == 1).all() and b.mask.sum() == 256
    assert set(np.unique(b.targets[:, -1])) == {0, 1}


@pytest.mark.parametrize(
    "call, argname",
    [
        (lambda: adding(0, 4, 10), "length"),
        (lambda: multiplication(0, 0, 100), "batch_size"),
        (lambda: temporal_order(0, 4, 19), "length"),
        (lambda: temporal_order(0, 4, 100, num_relevant=4), "num_relevant"),
        (lambda: long_time_lag(0, 4, 1), "length"),
        (lambda: copy(0, 4, 0), "length"),
        (lambda: copy(0, 4, 3, delay=0), "delay"),
        (lambda: copy(0, 4, 3, num_symbols=0), "num_symbols"),
        (lambda: parity(0, 4, 0), "length"),
        (lambda: parity(-1, 4, 3), "key_or_rng"),
    ],
)
def test_validation(call, argname):
    with pytest.raises(ValueError, match=f"^{argname}:"):
        call()


def test_bad_rng_type():
    with pytest.raises(TypeError, match="key_or_rng"):
        adding("seed", 4, 100)
    with pytest.raises(TypeError, match="key_or_rng"):
        adding(jax.random.split(jax.random.key(0)), 4, 100)


def test_seq_lengths_feed_jax():
    b = adding(0, 8, 50)
    lengths = b.seq_lengths()
    assert lengths.dtype == np.int32
    np.testing.assert_array_equal(lengths - 1, b.mask.argmax(axis=1))
    assert jax.numpy.asarray(b.inputs).shape == b.inputs.shape


def test_seq_lengths_inside_jit_equals_numpy():
    batch = adding(3, 8, 20)
    traced = jax.jit(lambda b: b.seq_lengths())(batch)
    np.testing.assert_array_equal(np.asarray(traced), batch.seq_lengths())

"""MQAR against the definition of Arora et al. 2023 (Zoology's ``multiquery_ar``)."""

import itertools

import jax
import numpy as np
import pytest

from rnnjax.data import Batch, mqar


def assert_same(a, b):
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("random_non_queries", [True, False])
@pytest.mark.parametrize("n, t, v", [(4, 24, 32), (8, 64, 64), (1, 4, 4), (3, 13, 9)])
def test_layout_against_the_definition(n, t, v, random_non_queries):
    b = mqar(
        3, 50, t, num_kv_pairs=n, vocab_size=v, random_non_queries=random_non_queries
    )
    assert isinstance(b, Batch)
    assert b.inputs.shape == b.targets.shape == b.mask.shape == (50, t)
    assert b.inputs.dtype == b.targets.dtype == np.int32 and b.mask.dtype == np.float32
    half = v // 2
    for x, y, m in zip(b.inputs, b.targets, b.mask, strict=True):
        keys, values = x[0 : 2 * n : 2], x[1 : 2 * n : 2]
        assert len(set(keys)) == n and len(set(values)) == n
        assert keys.min() >= 1 and keys.max() < half
        assert values.min() >= half and values.max() < v
        answer = dict(zip(keys.tolist(), values.tolist(), strict=True))
        (queries,) = np.nonzero(m)
        # every key queried once, after the block, at an even offset from it
        assert len(queries) == n and queries.min() >= 2 * n
        assert ((queries - 2 * n) % 2 == 0).all() and queries.max() <= t - 2
        assert sorted(x[queries].tolist()) == sorted(keys.tolist())
        assert [answer[k] for k in x[queries].tolist()] == y[queries].tolist()
        assert set(np.unique(m)) == {0.0, 1.0} and not y[m == 0].any()
        filler = np.ones(t, bool)
        filler[: 2 * n] = False
        filler[queries] = False
        if random_non_queries:
            assert x[filler].min() >= 0 and x[filler].max() < v
        else:
            assert not x[filler].any()
    if random_non_queries and t > 4 * n:
        # filler tokens are uniform over the whole vocabulary
        fill = b.inputs[:, 2 * n :][b.mask[:, 2 * n :] == 0]
        assert len(np.unique(fill)) > v // 2


def test_deterministic_from_seed_and_key():
    def draw(key):
        return mqar(key, 8, 32, num_kv_pairs=4, vocab_size=64)

    assert_same(draw(7), draw(7))
    assert_same(draw(jax.random.key(3)), draw(jax.random.key(3)))
    assert not np.array_equal(draw(7).inputs, draw(8).inputs)
    g = np.random.default_rng(0)  # a Generator advances: two draws differ
    assert not np.array_equal(draw(g).inputs, draw(g).inputs)


def reference_gap_inclusion(space, n, power_a):
    """P(slot s among the n gaps), from the definition: n successive draws without
    replacement, each proportional to (slot + 1) ** (power_a - 1) among the rest."""
    p = power_a * np.arange(1, space + 1, dtype=np.float64) ** (power_a - 1)
    p /= p.sum()
    inclusion = np.zeros(space)
    for order in itertools.permutations(range(space), n):
        prob, left = 1.0, 1.0
        for s in order:
            prob *= p[s] / left
            left -= p[s]
        inclusion[list(order)] += prob
    return inclusion


@pytest.mark.parametrize("n, power_a", [(1, 0.01), (2, 0.01), (2, 0.5), (3, 1.0)])
def test_query_gaps_follow_the_power_law(n, power_a):
    space, rows = 6, 20000
    b = mqar(
        0,
        rows,
        2 * n + 2 * space,
        num_kv_pairs=n,
        vocab_size=16,
        power_a=power_a,
        random_non_queries=False,
    )
    gaps = (np.nonzero(b.mask)[1] - 2 * n) // 2
    seen = np.bincount(gaps, minlength=space) / rows
    np.testing.assert_allclose(
        seen, reference_gap_inclusion(space, n, power_a), atol=0.015
    )


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"length": 15}, ValueError, r"length: must be >= 16 \(4 \* num_kv_pairs"),
        ({"vocab_size": 9}, ValueError, r"vocab_size: 9 has only 3 key tokens"),
        ({"vocab_size": 3}, ValueError, r"vocab_size: must be >= 4, got 3"),
        ({"num_kv_pairs": 0}, ValueError, r"num_kv_pairs: must be >= 1, got 0"),
        ({"num_kv_pairs": 2.0}, TypeError, r"num_kv_pairs: expected an int, got float"),
        (
            {"power_a": 0.0},
            ValueError,
            r"power_a: expected a float in \(0, 1\], got 0.0",
        ),
        ({"power_a": 1.5}, ValueError, r"power_a: expected a float in \(0, 1\]"),
        ({"power_a": "0.1"}, TypeError, r"power_a: expected a float, got str"),
        ({"batch_size": 0}, ValueError, r"batch_size: must be >= 1, got 0"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    args = {"batch_size": 2, "length": 16, "num_kv_pairs": 4, "vocab_size": 64}
    args.update(kwargs)
    b, t = args.pop("batch_size"), args.pop("length")
    with pytest.raises(error, match=message):
        mqar(0, b, t, **args)

"""``load_digits``: the scikit-learn 8 x 8 digits, scaled, binarised and split."""

import sys
from collections import Counter

import numpy as np
import pytest

from rnnjax.data import load_digits

pytest.importorskip("sklearn")
TOTAL = 1797


def test_shape_dtype_and_range():
    x = load_digits(binarize=False, split="all")
    assert x.shape == (TOTAL, 8, 8) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    # pixel counts 0..16 divided by 16
    np.testing.assert_array_equal(x * 16, np.round(x * 16))
    from sklearn.datasets import load_digits as sk_digits

    np.testing.assert_array_equal(x, sk_digits().images.astype(np.float32) / 16)


@pytest.mark.parametrize("threshold", [0.25, 0.5, 0.75])
def test_binarize(threshold):
    grey = load_digits(binarize=False, split="test")
    binary = load_digits(threshold=threshold, split="test")
    assert binary.dtype == np.float32
    assert set(np.unique(binary)) == {0.0, 1.0}
    np.testing.assert_array_equal(binary, (grey > threshold).astype(np.float32))


def test_split_sizes_determinism_and_disjointness():
    images, labels = load_digits(binarize=False, split="all", return_labels=True)
    tr, tr_y = load_digits(binarize=False, return_labels=True)
    te, te_y = load_digits(binarize=False, split="test", return_labels=True)
    assert len(te) == round(TOTAL * 0.2) and len(tr) + len(te) == TOTAL
    assert labels.dtype == np.int32 and set(np.unique(labels)) == set(range(10))
    np.testing.assert_array_equal(load_digits(binarize=False), tr)  # same seed
    # the two splits partition the dataset (as multisets: a few digits repeat)
    rows = lambda x, y: Counter(
        r.tobytes() + bytes([int(c)]) for r, c in zip(x, y, strict=True)
    )
    assert rows(tr, tr_y) + rows(te, te_y) == rows(images, labels)
    # the documented rule: test = the first round(N f) of permutation(N), in order
    order = np.random.default_rng(0).permutation(TOTAL)
    test_index = np.sort(order[: len(te)])
    train_index = np.setdiff1d(np.arange(TOTAL), test_index)
    np.testing.assert_array_equal(te, images[test_index])
    np.testing.assert_array_equal(tr_y, labels[train_index])
    other = load_digits(binarize=False, split="test", seed=1)
    assert len(other) == len(te) and not np.array_equal(other, te)


def test_test_fraction():
    assert len(load_digits(split="test", test_fraction=0.5)) == round(TOTAL * 0.5)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"split": "valid"}, ValueError, "split"),
        ({"threshold": 1.5}, ValueError, "threshold"),
        ({"test_fraction": 0.0}, ValueError, "test_fraction"),
        ({"test_fraction": 1.0}, ValueError, "test_fraction"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": "a"}, TypeError, "seed"),
    ],
)
def test_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        load_digits(**kwargs)


def test_missing_scikit_learn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes the import fail
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        load_digits()

"""Handwritten digits: the 1797 8 x 8 images (UCI optical digits) that ship with
scikit-learn, so they need no download; small enough to train DRAW in seconds."""

from __future__ import annotations

import numbers

import numpy as np

from rnnjax.data._rng import as_generator

SPLITS = ("train", "test", "all")


def load_digits(
    *,
    binarize: bool = True,
    threshold: float = 0.5,
    split: str = "train",
    test_fraction: float = 0.2,
    seed=0,
    return_labels: bool = False,
):
    """The scikit-learn digits as float32 images ``(n, 8, 8)`` in ``[0, 1]``.

    Pixels (counts 0..16) are divided by 16; with ``binarize`` they become 1.0
    where strictly above ``threshold`` and 0.0 elsewhere. The split is a random
    permutation of the 1797 images drawn from ``seed`` (an int or a JAX key, see
    ``rnnjax.data._rng.as_generator``): its first ``round(1797 * test_fraction)``
    images are ``"test"``, the rest ``"train"``; ``"all"`` is every image. Each
    split keeps the dataset's order, and the same seed gives the same split.

    Returns ``images`` or, with ``return_labels``, ``(images, labels)`` with
    ``labels`` ``(n,)`` int32 digits 0..9.

    Needs scikit-learn (imported here, on first use).
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    if not isinstance(threshold, numbers.Real) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold: expected a float in [0, 1], got {threshold!r}")
    if not isinstance(test_fraction, numbers.Real) or not 0.0 < test_fraction < 1.0:
        raise ValueError(
            f"test_fraction: expected a float in (0, 1), got {test_fraction!r}"
        )
    rng = as_generator(seed, "seed")
    try:
        from sklearn import datasets
    except ImportError as e:
        raise ImportError(
            "load_digits needs scikit-learn: pip install scikit-learn"
        ) from e
    raw = datasets.load_digits()
    images = np.asarray(raw.images, np.float32) / 16.0
    labels = np.asarray(raw.target, np.int32)
    if binarize:
        images = (images > threshold).astype(np.float32)
    if split != "all":
        order = rng.permutation(len(images))
        n_test = round(len(images) * test_fraction)
        index = np.sort(order[:n_test] if split == "test" else order[n_test:])
        images, labels = images[index], labels[index]
    return (images, labels) if return_labels else images

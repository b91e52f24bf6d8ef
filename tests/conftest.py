"""Test configuration: strict JAX promotion rules catch silent broadcasting bugs."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def randomize(params, seed=0, scale=0.5):
    """Replaces every leaf of ``params`` by normal noise (so every parameter, even
    ones initialised to zero or one, is exercised)."""
    r = np.random.default_rng(seed)
    return jax.tree.map(
        lambda a: jax.numpy.asarray(scale * r.standard_normal(a.shape), a.dtype), params
    )

"""Test configuration: strict JAX promotion rules catch silent broadcasting bugs."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import numpy as np
import pytest

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


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)


def assert_close(a, b, what, tol=1e-5):
    err = rel_err(a, b)
    assert err < tol, f"{what}: relative error {err:.3g}"


# The environment of subprocess tests that run tiny programs: XLA's optimisation
# passes cost them more compile time than they save in run time.
FAST_COMPILE = {"JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}

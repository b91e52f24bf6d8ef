"""Test configuration: strict JAX promotion rules catch silent broadcasting bugs,
and one compilation cache per test run.

The cache: many tests compile the same programs (a reference ``lax.scan`` for
every parameter of a comparison, each from a new function object, so ``jit``'s
own cache misses). JAX's persistent cache is keyed by the program, so the second
compilation is a read. It is a fresh directory for each run of the suite (shared
by the xdist workers and the subprocesses the tests start), removed at the end:
a run never reuses an earlier run's compilations.
"""

import os
import shutil
import tempfile

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

_CACHE_ENV = {
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
}


def pytest_configure(config):
    """The controller makes the run's cache directory (workers inherit it through
    the environment) and removes it when the run ends."""
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        cache = tempfile.mkdtemp(prefix="rnnjax-test-jax-cache-")
        os.environ.update({"JAX_COMPILATION_CACHE_DIR": cache, **_CACHE_ENV})
        config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))
    jax.config.update(
        "jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"]
    )
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    # pytest-xdist: "-n 2" deals tests as "loadgroup" rather than "load", so the
    # tests marked ``xdist_group`` (the deviceless compiles of one platform,
    # tests/accelerators) run on one worker, which compiles them once; the others
    # are dealt as by "load". The controller picks the scheduler; each worker tags
    # its tests with their group.
    if getattr(config.option, "dist", None) == "load":
        config.option.dist = "loadgroup"
    if hasattr(config, "workerinput"):
        config.option.loadgroup = True


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


@pytest.fixture
def fast_compile():
    """In-process FAST_COMPILE, for tests whose time is compiling (not running) a
    few programs: XLA's cheaper passes, the setting restored afterwards."""
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", before)

"""Helpers shared by the kernel tests: run ``unroll`` with an ``impl``, compile
cheaply, draw cotangents, compare pytrees."""

from __future__ import annotations

import jax
import numpy as np

import rnnjax

RTOL = 1e-5
# XLA's cheaper backend passes: the kernel tests compile many small programs.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def run_impl(cell, impl, **kwargs):
    """``f(params, xs, carry) = rnnjax.unroll(...)`` with ``impl`` in its options
    and ``kwargs``."""
    options = rnnjax.UnrollOptions(impl=impl)

    def f(params, xs, carry):
        return rnnjax.unroll(cell, params, xs, carry=carry, options=options, **kwargs)

    return f


def jit_fast(f):
    """``jit(f)`` compiled with :data:`FAST_COMPILE`, run once."""

    def run(*args):
        return jax.jit(f).lower(*args).compile(FAST_COMPILE)(*args)

    return run


def random_like(tree, seed):
    r = np.random.default_rng(seed)
    return jax.tree.map(
        lambda a: jax.numpy.asarray(r.standard_normal(np.shape(a)), a.dtype), tree
    )


def values_and_vjp(f, primals, seed):
    """``f``'s outputs and its VJP against a random cotangent."""
    out, vjp = jax.vjp(f, *primals)
    return out, vjp(random_like(out, seed))


def assert_tree_close(got, want, rtol=RTOL):
    """Leaf by leaf (same shapes and dtypes); the absolute floor scales with each
    leaf's magnitude."""
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for (path, a), b in zip(
        jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want), strict=True
    ):
        assert a.shape == b.shape and a.dtype == b.dtype, jax.tree_util.keystr(path)
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        atol = rtol * max(1.0, float(np.max(np.abs(b), initial=0.0)))
        np.testing.assert_allclose(
            a, b, rtol=rtol, atol=atol, err_msg=jax.tree_util.keystr(path)
        )


def assert_same_derivatives(got, want, primals, tangents, seed=0, values=True):
    """``got`` and ``want`` (functions of ``*primals``) agree: their values (when
    ``values``), VJPs against one random cotangent and JVPs along ``tangents``."""
    if values:
        assert_tree_close(jit_fast(got)(*primals), jit_fast(want)(*primals))
    assert_tree_close(
        jit_fast(lambda *a: values_and_vjp(got, a, seed))(*primals),
        jit_fast(lambda *a: values_and_vjp(want, a, seed))(*primals),
    )
    assert_tree_close(
        jit_fast(lambda p, t: jax.jvp(got, p, t))(primals, tangents),
        jit_fast(lambda p, t: jax.jvp(want, p, t))(primals, tangents),
    )

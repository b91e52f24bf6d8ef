"""Float64 NumPy building blocks for the cell reference implementations.

Nothing here imports rnnjax: the references are written from the papers' equations
(as restated in each cell module's docstring) so that they check rnnjax rather than
repeat it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tests.conftest import randomize

# float32 compute against a float64 reference, a few steps deep.
RTOL = 1e-5
ATOL = 1e-5
NUM_STEPS = 5
BATCH_SHAPES = [(), (3,), (2, 3)]
BATCH_IDS = ["unbatched", "B3", "B2x3"]

# bfloat16 compute (``dtype=jnp.bfloat16``): matrix-product operands are rounded to
# an 8-bit significand (relative error 2**-9 each); observed errors after
# ``NUM_STEPS`` steps are about 5e-3, so 3e-2 leaves room without hiding a wrong
# equation (those are off by O(0.1) or more).
BF16_TOL = 3e-2

# Layer-norm epsilon: Ba et al. leave it unspecified; 1e-5 is the common choice
# (PyTorch, Flax). It only matters when the variance is tiny, which it is not here.
LN_EPS = 1e-5


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def relu(x):
    return np.maximum(x, 0.0)


def identity(x):
    return x


# Activation choices of the cell constructors, mapped to NumPy.
ACTIVATIONS: dict[object, Callable] = {
    "tanh": np.tanh,
    "relu": relu,
    "sigmoid": sigmoid,
    None: identity,
    jnp.sin: np.sin,
}


def layer_norm(x, scale, bias=None, eps=LN_EPS):
    """Ba, Kiros & Hinton 2016 over the last axis (biased variance)."""
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps) * scale
    return y if bias is None else y + bias


def split(a, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Splits ``(..., len(names)*H)`` into equal blocks keyed by ``names``."""
    return dict(zip(names, np.split(a, len(names), axis=-1), strict=True))


def to64(tree):
    """Every array leaf as a float64 NumPy array (``None`` leaves stay ``None``)."""
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def setup(cell, input_size, batch_shape, seed=0):
    """Randomised params, a random (non-zero) initial carry and ``NUM_STEPS`` inputs.

    Returns float32 JAX values; the reference gets the same numbers in float64.
    ``init`` and ``initial_carry`` run under ``jax.eval_shape``: ``randomize``
    replaces every leaf anyway, and tracing skips compiling the initialisers (QR,
    random draws) for each shape (their values are tested on their own).
    """
    key = jax.random.key(seed)
    params = randomize(jax.eval_shape(lambda: cell.init(key, input_size)), seed=seed)
    carry = jax.eval_shape(lambda: cell.initial_carry(batch_shape))
    carry = randomize(carry, seed=seed + 1)
    rng = np.random.default_rng(seed + 2)
    xs = rng.standard_normal((NUM_STEPS, *batch_shape, input_size)).astype(np.float32)
    return params, carry, jnp.asarray(xs)


def assert_tree_close(actual, expected, what, rtol=RTOL, atol=ATOL):
    """``actual`` (JAX) against ``expected`` (NumPy), same structure, same shapes."""
    actual_leaves, actual_def = jax.tree.flatten(actual)
    expected_leaves, expected_def = jax.tree.flatten(expected)
    assert actual_def == expected_def, f"{what}: {actual_def} != {expected_def}"
    for k, (a, e) in enumerate(zip(actual_leaves, expected_leaves, strict=True)):
        assert a.dtype == jnp.float32, f"{what}[{k}]: dtype {a.dtype}"
        assert a.shape == e.shape, f"{what}[{k}]: shape {a.shape} != {e.shape}"
        np.testing.assert_allclose(
            np.asarray(a, np.float64), e, rtol=rtol, atol=atol, err_msg=f"{what}[{k}]"
        )


def check_steps(
    cell,
    input_size,
    batch_shape,
    reference_step,
    carry_to_ref=lambda c: c,
    rtol=RTOL,
    atol=ATOL,
):
    """Runs ``cell.step`` for ``NUM_STEPS`` steps and the float64 reference alongside.

    ``reference_step(params64, carry64, x64) -> (carry64, y64)``, where the carry is
    ``carry_to_ref`` of the cell's carry (e.g. a plain tuple) in float64. The
    reference runs on its own state from the same initial carry (no re-syncing), so
    errors in the recurrence accumulate and show.
    """
    params, carry, xs = setup(cell, input_size, batch_shape)
    p64, ref_carry = to64(params), to64(carry_to_ref(carry))
    for t in range(NUM_STEPS):
        carry, y = cell.step(params, carry, xs[t])
        ref_carry, ref_y = reference_step(p64, ref_carry, to64(xs[t]))
        assert_tree_close(y, ref_y, f"y at step {t}", rtol, atol)
        assert_tree_close(
            carry_to_ref(carry), ref_carry, f"carry at step {t}", rtol, atol
        )
    return params


def assert_orthonormal_blocks(w, num_blocks, what, atol=1e-5):
    """Each of the ``num_blocks`` column blocks of ``w`` is a (semi-)orthogonal
    matrix: orthonormal columns when tall or square, orthonormal rows when wide;
    and no two blocks are the same matrix (one independent draw per block)."""
    w = np.asarray(w, np.float64)
    blocks = np.split(w, num_blocks, axis=-1)
    for k, blk in enumerate(blocks):
        rows, cols = blk.shape
        gram = blk.T @ blk if rows >= cols else blk @ blk.T
        np.testing.assert_allclose(
            gram, np.eye(min(rows, cols)), atol=atol, err_msg=f"{what} block {k}"
        )
    for j in range(num_blocks):
        for k in range(j + 1, num_blocks):
            assert not np.allclose(blocks[j], blocks[k]), f"{what}: blocks {j}, {k}"


def const_init(value):
    """An initialiser ``f(key, shape, dtype)`` filling with ``value``."""

    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.full(shape, value, dtype)

    return init


CUSTOM_INITS = dict(
    kernel_init=const_init(0.25),
    recurrent_init=const_init(-0.5),
    bias_init=const_init(0.75),
)

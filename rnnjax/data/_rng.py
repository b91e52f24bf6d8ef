"""One way to turn a seed, a NumPy ``Generator`` or a JAX key into a ``Generator``."""

from __future__ import annotations

import numbers

import numpy as np


def as_generator(key_or_rng, argname: str = "key_or_rng") -> np.random.Generator:
    """Returns a ``numpy.random.Generator`` for ``key_or_rng``.

    - an ``int`` seed (or a 0-d integer array): ``np.random.default_rng(seed)``, a
      fresh generator, so the same seed gives the same data on every call;
    - a ``numpy.random.Generator``: used as is (its state advances, so two calls with
      the same generator give different data);
    - a JAX PRNG key (typed ``jax.random.key`` or raw ``uint32[2]``
      ``jax.random.PRNGKey``): its key data seeds ``np.random.default_rng``, so the
      same key gives the same data. Split the key for different batches.
    """
    if isinstance(key_or_rng, np.random.Generator):
        return key_or_rng
    if isinstance(key_or_rng, numbers.Integral) and not isinstance(key_or_rng, bool):
        if key_or_rng < 0:
            raise ValueError(f"{argname}: a seed must be >= 0, got {key_or_rng}")
        return np.random.default_rng(int(key_or_rng))
    if hasattr(key_or_rng, "dtype") and hasattr(key_or_rng, "shape"):
        import jax

        if jax.dtypes.issubdtype(key_or_rng.dtype, jax.dtypes.prng_key):
            data = jax.random.key_data(key_or_rng)
        else:
            data = key_or_rng
        data = np.asarray(data)
        if data.ndim == 0 and np.issubdtype(data.dtype, np.integer) and data >= 0:
            return np.random.default_rng(int(data))
        if data.dtype == np.uint32 and data.ndim == 1 and data.size >= 1:
            return np.random.default_rng(data.astype(np.uint64).tolist())
    raise TypeError(
        f"{argname}: expected an int seed, a numpy.random.Generator or a single JAX "
        f"PRNG key, got {type(key_or_rng).__name__}"
        + (f" with shape {key_or_rng.shape}" if hasattr(key_or_rng, "shape") else "")
    )


def check_int(value, argname: str, minimum: int, why: str = "") -> int:
    """``value`` as an ``int``, or a ``ValueError`` naming ``argname``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{argname}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(
            f"{argname}: must be >= {minimum}{' ' + why if why else ''}, got {value}"
        )
    return int(value)

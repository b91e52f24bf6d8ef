"""Helpers shared by the PyTorch and Keras converters (no torch, no keras)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def to_numpy(a) -> np.ndarray:
    """A NumPy copy of a torch tensor, a Keras variable or any array-like."""
    if hasattr(a, "detach"):  # torch.Tensor (and Parameter)
        a = a.detach().cpu()
        if not a.dtype.is_floating_point or a.dtype.itemsize < 4:
            a = a.float()  # bfloat16 and half have no NumPy twin
        return a.numpy()
    return np.asarray(a)


def f32(a) -> jnp.ndarray:
    """``a`` as a float32 jnp array."""
    return jnp.asarray(to_numpy(a).astype(np.float32))


def type_name(obj) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"

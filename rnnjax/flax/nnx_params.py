"""rnnjax parameter pytrees held by NNX modules: each array in its own
``nnx.Param``, read back as the plain pytree, and loaded from one."""

from __future__ import annotations

import jax
from flax import nnx


def is_variable(x) -> bool:
    """Whether ``x`` is an ``nnx.Variable`` (a leaf of a wrapped pytree)."""
    return isinstance(x, nnx.Variable)


def wrap_params(params):
    """rnnjax's parameter pytree with each array in its own ``nnx.Param``."""
    return nnx.data(jax.tree.map(nnx.Param, params))


def unwrap_params(tree):
    """The plain pytree of a `wrap_params` tree's current values."""
    return jax.tree.map(lambda v: v.get_value(), tree, is_leaf=is_variable)


def assign_params(tree, params) -> None:
    """Loads ``params`` (the plain pytree) into the ``nnx.Param`` leaves of
    ``tree``; ValueError naming ``params`` when the structures differ."""
    expected = jax.tree.structure(tree, is_leaf=is_variable)
    got = jax.tree.structure(params)
    if got != expected:
        raise ValueError(f"params: expected the structure {expected}, got {got}")
    for var, value in zip(
        jax.tree.leaves(tree, is_leaf=is_variable),
        jax.tree.leaves(params),
        strict=True,
    ):
        var.set_value(value)

"""The structure of a cell's carry, checked and described (no shapes)."""

from __future__ import annotations

import jax


def check_carry_structure(cell, carry, batch_shape=()) -> None:
    """Raises ValueError naming ``carry`` when its pytree structure (containers
    and their types, not shapes) differs from ``cell.initial_carry(batch_shape)``'s.
    Nothing is checked for a batch shape the cell refuses (its own checks name
    it)."""
    try:
        template = jax.eval_shape(lambda: cell.initial_carry(batch_shape))
    except (ValueError, TypeError):
        return
    expected, got = jax.tree.structure(template), jax.tree.structure(carry)
    if got != expected:
        raise ValueError(
            f"carry: expected the structure of {type(cell).__name__}.initial_carry, "
            f"{describe_structure(expected)}; got {describe_structure(got)}"
        )


def describe_structure(treedef) -> str:
    """A pytree structure with ``*`` for each leaf, e.g. ``LSTMState(c=*, h=*,
    gates=None)`` (a bare ``*`` is one array)."""
    return str(jax.tree.unflatten(treedef, [_Leaf()] * treedef.num_leaves))


class _Leaf:
    def __repr__(self) -> str:
        return "*"

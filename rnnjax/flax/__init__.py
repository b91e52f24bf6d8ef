"""Flax modules over rnnjax cells and stacks: ``rnnjax.flax.linen`` and
``rnnjax.flax.nnx``.

Thin wrappers with no maths of their own: each module holds exactly the parameter
pytree of the rnnjax object it wraps (``cell.init`` or ``Stack.init``), so
parameters move between the Flax modules and rnnjax's functional API unchanged.

``import rnnjax`` does not import Flax; import these explicitly:

    from rnnjax.flax import linen   # or: import rnnjax.flax.nnx
"""

from __future__ import annotations

import importlib

__all__ = ["linen", "nnx"]


def __getattr__(name: str):
    # Lazy, so that ``import rnnjax.flax.linen`` does not import flax.nnx too.
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""What the linen and NNX modules share (no Flax imported here)."""

from __future__ import annotations

from collections.abc import Sequence

from rnnjax.layers import Stack, stack

STACK_DEFAULTS = dict(
    num_layers=None,
    bidirectional=False,
    dropout=0.0,
    input_dropout=0.0,
    recurrent_dropout=0.0,
    time_major=False,
)


def build_stack(cells, **arguments) -> Stack:
    """``rnnjax.stack(cells, **arguments)``; or ``cells`` itself when it is a
    composed [`rnnjax.Stack`][rnnjax.Stack] (then ``arguments`` must keep
    `STACK_DEFAULTS`: the stack brings its own layers and rates)."""
    if isinstance(cells, Stack):
        changed = [f"{k}={v!r}" for k, v in arguments.items() if v != STACK_DEFAULTS[k]]
        if changed:
            raise ValueError(
                "cells: an rnnjax.Stack brings its own layers, dropout and layout, "
                f"so expected the stack arguments at their defaults; got "
                f"{', '.join(changed)}"
            )
        return cells
    if isinstance(cells, Sequence):
        cells = tuple(cells)
    return stack(cells, **arguments)

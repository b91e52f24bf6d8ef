"""The parallel and chunkwise recurrences of cells built on the mLSTM core.

A [`ParallelFormCell`][rnnjax.cells.mlstm.ParallelFormCell] (``rnnjax.mlstm``)
runs the mLSTM core on queries, keys, values and gate pre-activations that depend
on the input alone (``cell.core_inputs``), so the whole sequence also has the
core's parallel and chunkwise forms (`rnnjax.kernels.mlstm`). The recurrences
here adapt the contract of [`rnnjax.kernels`][rnnjax.kernels] (time-major
`StepInputs`) to the core's batch-major layout with heads before time, run one
form, and map the core's ``h`` to the outputs (``cell.core_outputs``):

- ``parallel_recurrence`` (``impl="parallel"``): the quadratic form, ``O(T^2)``
  memory per head;
- ``chunkwise_recurrence`` (``impl="chunkwise"``, and ``"auto"`` for these
  cells): chunks of ``cell.chunk_size`` steps, the parallel form when
  ``T <= chunk_size``;
- ``pallas_chunkwise_recurrence`` (``impl="pallas"`` or a `Pallas` value): the
  chunkwise form with its forward pass in a Pallas kernel
  (`rnnjax.kernels.pallas_mlstm`; reverse-mode derivatives only).

Resets (``StepInputs.resets``: the carry returns to ``carry0`` before a step) are
not modelled by the parallel forms: with resets given, all three run the plain
``scan_recurrence``. A recurrent-dropout mask (``rec_mask``) is refused with a
ValueError (the cell has no recurrent matrix product).
"""

from __future__ import annotations

import functools

import jax.numpy as jnp

from rnnjax.cells.base import expand
from rnnjax.cells.mlstm import ParallelFormCell, check_no_rec_mask
from rnnjax.kernels.impl import Pallas
from rnnjax.kernels.mlstm import mlstm_chunkwise, mlstm_parallel
from rnnjax.kernels.pallas_mlstm import mlstm_chunkwise_pallas
from rnnjax.kernels.scan import StepInputs, broadcast_mask, scan_recurrence


def has_parallel_form(cell) -> bool:
    """Whether ``cell`` states the mLSTM core's parallel form: a
    `ParallelFormCell`."""
    return isinstance(cell, ParallelFormCell)


def check_parallel_form(cell, impl) -> None:
    """Raises ValueError naming ``impl`` when ``cell`` has no parallel form."""
    if not has_parallel_form(cell):
        raise ValueError(
            f"impl: {str(impl)!r} needs a cell with the parallel form of the mLSTM "
            "core (a ParallelFormCell, e.g. rnnjax.mlstm); "
            f"{type(cell).__name__} is not (use impl='scan' or 'auto')"
        )


def parallel_recurrence(cell, params, carry0, inputs: StepInputs, *, unroll=1):
    """The parallel form; the contract of [`rnnjax.kernels`][rnnjax.kernels]
    (``unroll`` is used by the scan that runs with resets)."""
    return _core_recurrence("parallel", cell, params, carry0, inputs, unroll)


def chunkwise_recurrence(cell, params, carry0, inputs: StepInputs, *, unroll=1):
    """The chunkwise form (chunks of ``cell.chunk_size``); the contract of
    [`rnnjax.kernels`][rnnjax.kernels] (``unroll`` is used by the scan that runs
    with resets)."""
    return _core_recurrence("chunkwise", cell, params, carry0, inputs, unroll)


def pallas_chunkwise_recurrence(
    cell, params, carry0, inputs: StepInputs, *, unroll=1, options: Pallas | None = None
):
    """The chunkwise form (chunks of ``cell.chunk_size``) with its forward pass
    in the Pallas kernel of ``options`` (`mlstm_chunkwise_pallas`); the
    contract of [`rnnjax.kernels`][rnnjax.kernels]. Raises ValueError when the
    chunk size or head size do not fit the kernel's target (its rules in
    `rnnjax.kernels.pallas_mlstm`)."""
    run = functools.partial(mlstm_chunkwise_pallas, options=options)
    return _core_recurrence("pallas", cell, params, carry0, inputs, unroll, run)


def _core_recurrence(form, cell, params, carry0, inputs, unroll, run=None):
    check_parallel_form(cell, form)
    zs, bias, valid, resets, rec_mask = inputs
    check_no_rec_mask(cell, rec_mask)
    if resets is not None:
        return scan_recurrence(cell, params, carry0, inputs, unroll=unroll)
    if bias is not None:
        zs = zs + expand(bias, zs.ndim)
    q, k, v, i_pre, f_pre = cell.core_inputs(params, zs)  # (T, *B, NH, [DH])
    heads_first = (
        *(jnp.moveaxis(x, 0, -2) for x in (q, k, v)),  # (*B, NH, T, DH)
        *(jnp.moveaxis(x, 0, -1) for x in (i_pre, f_pre)),  # (*B, NH, T)
    )
    options = dict(
        valid=None if valid is None else jnp.moveaxis(valid, 0, -1),  # (*B, T)
        forget_gate=cell.forget_gate,
        eps=cell.eps,
    )
    if form in ("chunkwise", "pallas"):
        options["chunk_size"] = cell.chunk_size
    if run is None:
        run = mlstm_chunkwise if form == "chunkwise" else mlstm_parallel
    carry, h = run(*heads_first, carry0, **options)
    ys = cell.core_outputs(params, zs, jnp.moveaxis(h, -2, 0))  # (T, *B, Y)
    if valid is not None:
        ys = jnp.where(broadcast_mask(valid, ys), ys, jnp.zeros((), ys.dtype))
    return carry, ys

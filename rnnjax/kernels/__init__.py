"""Implementations of the recurrence, each next to the reference it must equal.

The contract. Every recurrence is a function:

    recurrence(cell, params, carry0, inputs, *, unroll=1) -> (carry_T, ys)

with ``inputs`` a `StepInputs` (time-major ``zs (T, *B, Z)``, an optional
``bias (Z,)`` added to every step, ``valid`` and ``resets`` booleans ``(T, *B)``,
a ``rec_mask (*B, K)``; absent ones ``None``), ``unroll`` the steps per loop
iteration, ``carry_T`` the carry after the last valid step and ``ys (T, *B, Y)``
the outputs (zero on invalid steps). All of them give the numbers of
``scan_recurrence`` (to float rounding), values and derivatives.

- ``scan``: the plain ``lax.scan`` over ``cell.recur`` (reference; every cell).
- ``fused``: fused-form cells; hand-written derivative (a ``custom_jvp`` with a
  linear tangent scan) with the weight products hoisted out of the time loop;
  faster than ``scan`` forward and backward (``benchmarks/RESULTS.md``).
- ``associative``: cells whose recurrence is linear in the state
  (``LinearRecurrenceCell``: ``min_gru``, ``min_lstm``); a parallel
  ``lax.associative_scan`` over the steps' affine maps, ``O(log T)`` depth
  (``benchmarks/RESULTS.md``).
- ``parallel`` and ``chunkwise``: cells built on the mLSTM core
  (``ParallelFormCell``: ``mlstm``); its parallel form (quadratic in ``T``, like
  attention) and its chunkwise form (the parallel form inside chunks, the
  recurrence between them; linear in ``T``). With resets they run the scan.
  The core itself, ``mlstm_scan``, ``mlstm_parallel``, ``mlstm_chunkwise`` and
  ``mlstm_sequence``, is in ``rnnjax.kernels.mlstm``.
- ``pallas``: the plain LSTM and the GRU (reset after); Pallas kernels that walk
  time with ``W_h`` on chip, forward and backward (a ``custom_vjp``: reverse mode
  only). GPU (Triton) and TPU (Mosaic) flavours, picked by the backend at trace
  time unless `Pallas` names one; on the CPU they run in Pallas'
  interpreter (slow; for tests). See ``pallas_gpu`` and ``pallas_tpu``. For
  cells on the mLSTM core, the chunkwise form with its forward pass in one
  Pallas kernel that walks the chunks with the state on chip (the derivative
  is the plain chunkwise form's): ``mlstm_chunkwise_pallas`` in
  ``pallas_mlstm``.

- ``cudnn``: the plain LSTM through cuDNN (``jax.experimental.rnn``) on a CUDA
  GPU; a whole layer per call from the raw inputs, so `rnnjax.unroll` runs it in
  place of the projection and the recurrence (``rnnjax.kernels.cudnn``).

The choice is a value, ``rnnjax.UnrollOptions(impl=...)``: an `Impl` (or
its string) or a `Pallas` (``"pallas"`` with options); `select`
turns it into the recurrence function.
"""

import functools

from jax import lax

from rnnjax.cells.base import is_fusable
from rnnjax.kernels import cudnn
from rnnjax.kernels.associative import (
    associative_recurrence,
    check_linear,
    has_linear_recurrence,
)
from rnnjax.kernels.fused import fused_recurrence
from rnnjax.kernels.impl import IMPLS, Impl, Pallas, as_impl
from rnnjax.kernels.mlstm import (
    mlstm_chunkwise,
    mlstm_parallel,
    mlstm_scan,
    mlstm_sequence,
)
from rnnjax.kernels.pallas import check_supported, is_supported, pallas_recurrence
from rnnjax.kernels.pallas_mlstm import mlstm_chunkwise_pallas
from rnnjax.kernels.parallel_form import (
    check_parallel_form,
    chunkwise_recurrence,
    has_parallel_form,
    pallas_chunkwise_recurrence,
    parallel_recurrence,
)
from rnnjax.kernels.scan import StepInputs, scan_recurrence

# Lowering platforms ("cuda", "rocm", "tpu") where "auto" picks the Pallas kernels:
# those where benchmarks/gpu.py's checks passed on real hardware and pallas beat
# fused by its rule. Empty: on one H200 (benchmarks/RESULTS.md) the checks passed
# but fused was faster in every group; no TPU has been lent. impl="pallas" opts in.
AUTO_PALLAS_PLATFORMS: frozenset[str] = frozenset()


def select(cell, impl):
    """Returns the recurrence function for ``impl`` (an `Impl`, its string
    or a `Pallas`). ``"auto"`` picks the fastest valid one for this cell:
    ``associative`` for cells linear in the state; ``chunkwise`` for cells with
    the mLSTM core's parallel form (the parallel form for ``T <= chunk_size``);
    ``pallas`` for the plain LSTM and the GRU on the platforms of
    `AUTO_PALLAS_PLATFORMS` (none yet; ``fused`` for shapes it cannot hold),
    decided per lowering platform; ``fused`` for fused-form cells; ``scan``
    otherwise. ``"pallas"`` (or a `Pallas`) runs a cell on the mLSTM core by
    its chunkwise form with the forward pass in a Pallas kernel. Raises
    ValueError naming ``impl`` when the cell cannot run it."""
    impl = as_impl(impl)
    if impl == Impl.CUDNN:
        raise ValueError(
            "impl: 'cudnn' runs whole layers from the raw inputs, not a recurrence "
            "over projected ones: use rnnjax.unroll, a Layer or a Stack"
        )
    if isinstance(impl, Pallas) or impl == Impl.PALLAS:
        options = impl if isinstance(impl, Pallas) else Pallas()
        if has_parallel_form(cell):
            return functools.partial(pallas_chunkwise_recurrence, options=options)
        check_supported(cell)
        return functools.partial(pallas_recurrence, options=options)
    auto = impl == Impl.AUTO
    if impl in (Impl.PARALLEL, Impl.CHUNKWISE):
        check_parallel_form(cell, impl)
        return parallel_recurrence if impl == Impl.PARALLEL else chunkwise_recurrence
    if auto and has_parallel_form(cell):
        return chunkwise_recurrence
    if has_parallel_form(cell) and impl in (Impl.FUSED, Impl.ASSOCIATIVE):
        raise ValueError(
            f"impl: {str(impl)!r} does not run {type(cell).__name__}, which has the "
            "mLSTM core's forms (use 'chunkwise', 'parallel', 'scan' or 'auto')"
        )
    if impl == Impl.ASSOCIATIVE or (auto and has_linear_recurrence(cell)):
        check_linear(cell)
        return associative_recurrence
    if auto and AUTO_PALLAS_PLATFORMS and is_supported(cell):
        return functools.partial(
            auto_pallas_recurrence, platforms=tuple(sorted(AUTO_PALLAS_PLATFORMS))
        )
    if impl == Impl.SCAN or (auto and not is_fusable(cell)):
        return scan_recurrence
    return fused_recurrence


def auto_pallas_recurrence(cell, params, carry0, inputs, *, unroll=1, platforms):
    """``"auto"`` for a cell the Pallas kernels run: on each of ``platforms`` the
    compiled kernels of its flavour (``fused`` for shapes they cannot hold), on
    every other platform ``fused``. The choice is made when the program is lowered
    (``lax.platform_dependent``), for the platform it is lowered for, so a
    deviceless compile, ``jax.export`` for several platforms or work under
    ``jax.default_device`` gets the path of its target, not of the default
    backend. (Both kernels are traced, and the Pallas one has reverse-mode
    derivatives only.)"""

    def on(platform):
        options = Pallas(
            flavour="tpu" if platform == "tpu" else "gpu",
            interpret=platform not in ("cuda", "rocm", "tpu"),
        )
        return functools.partial(
            pallas_recurrence, cell, options=options, fallback=fused_recurrence,
            unroll=unroll,
        )  # fmt: skip

    branches = {platform: on(platform) for platform in platforms}
    default = functools.partial(fused_recurrence, cell, unroll=unroll)
    return lax.platform_dependent(params, carry0, inputs, default=default, **branches)


__all__ = [
    "AUTO_PALLAS_PLATFORMS",
    "auto_pallas_recurrence",
    "IMPLS",
    "Impl",
    "Pallas",
    "StepInputs",
    "cudnn",
    "associative_recurrence",
    "chunkwise_recurrence",
    "fused_recurrence",
    "has_linear_recurrence",
    "has_parallel_form",
    "mlstm_chunkwise",
    "mlstm_chunkwise_pallas",
    "mlstm_parallel",
    "mlstm_scan",
    "mlstm_sequence",
    "pallas_chunkwise_recurrence",
    "parallel_recurrence",
    "pallas_recurrence",
    "scan_recurrence",
    "select",
]

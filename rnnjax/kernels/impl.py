"""The choice of implementation as a value: ``UnrollOptions(impl=...)``.

``impl`` is an `Impl` (or its plain string: ``"auto"``, ``"scan"``,
``"fused"``, ``"associative"``, ``"parallel"``, ``"chunkwise"``, ``"pallas"``,
``"cudnn"``) or a `Pallas` value, which
means ``"pallas"`` with options. The value is part of the (hashable) unroll
options, so a function jitted with one choice is never silently reused with
another.
"""

from __future__ import annotations

import dataclasses
import enum

import jax

from rnnjax.kernels import chips

FLAVOURS = ("gpu", "tpu")
GPU_DESIGNS = ("sequence", "stepwise")


class Impl(enum.StrEnum):
    """The implementations of the recurrence (equal as values to their strings).

    - ``AUTO``: the fastest valid one for the cell and the backend.
    - ``SCAN``: the plain ``lax.scan`` of ``cell.recur`` (the reference; every cell).
    - ``FUSED``: the fused kernel (fused-form cells).
    - ``ASSOCIATIVE``: a parallel scan (cells linear in the state, ``min_gru``).
    - ``PARALLEL``: the parallel form of the mLSTM core, quadratic in ``T``
      (cells with that form, `rnnjax.cells.mlstm.ParallelFormCell`: ``mlstm``).
    - ``CHUNKWISE``: the chunkwise form of the mLSTM core, linear in ``T`` (the
      same cells; the parallel form inside chunks of the cell's ``chunk_size``).
    - ``PALLAS``: the Pallas kernels with the default `Pallas` options.
    - ``CUDNN``: cuDNN's LSTM (``jax.experimental.rnn``; the plain LSTM on a
      CUDA GPU, see ``rnnjax.kernels.cudnn``).
    """

    AUTO = "auto"
    SCAN = "scan"
    FUSED = "fused"
    ASSOCIATIVE = "associative"
    PARALLEL = "parallel"
    CHUNKWISE = "chunkwise"
    PALLAS = "pallas"
    CUDNN = "cudnn"


IMPLS = tuple(impl.value for impl in Impl)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Pallas:
    """``impl="pallas"`` with options; ``None`` fields are chosen from the
    backend when the recurrence is traced (`resolved`).

    Example, the TPU kernels in Pallas' interpreter on a CPU host:

        options = rnnjax.UnrollOptions(
            impl=rnnjax.kernels.Pallas(flavour="tpu", interpret=True)
        )
        rnnjax.unroll(cell, params, xs, options=options)

    Attributes:
      flavour: ``"gpu"`` (Triton) or ``"tpu"`` (Mosaic); default: ``"tpu"`` on a
        TPU backend, ``"gpu"`` elsewhere.
      interpret: run the kernels in Pallas' interpreter; default: on the CPU
        backend (slow; for tests), compiled on GPU and TPU.
      gpu_design: ``"sequence"`` (one program per batch tile walks all steps with
        ``W_h`` resident) or ``"stepwise"`` (one fused launch per step); default:
        ``"sequence"`` where ``W_h`` fits one block's shared memory of the target
        (see ``pallas_gpu``).
      target: the chip the kernels are sized for (``rnnjax.kernels.chips``):
        ``"sm_80"``, ``"sm_86"``, ``"sm_89"``, ``"sm_90"`` (GPU), ``"v4"``,
        ``"v5e"``, ``"v5p"``, ``"v6e"`` (TPU); name it for a deviceless compile
        or an export. Default: the local device's chip, else the smallest of the
        flavour (``"sm_80"``, ``"v4"``).
    """

    flavour: str | None = None
    interpret: bool | None = None
    gpu_design: str | None = None
    target: str | None = None

    def __post_init__(self):
        if self.flavour not in (None, *FLAVOURS):
            raise ValueError(
                f"flavour: expected one of {FLAVOURS} or None, got {self.flavour!r}"
            )
        if self.gpu_design not in (None, *GPU_DESIGNS):
            raise ValueError(
                f"gpu_design: expected one of {GPU_DESIGNS} or None, got "
                f"{self.gpu_design!r}"
            )
        chips.check_target(self.target)
        if self.interpret not in (None, True, False):
            raise ValueError(
                f"interpret: expected a bool or None, got {self.interpret!r}"
            )

    def resolved(self) -> Pallas:
        """These options with ``flavour`` and ``interpret`` filled in from the
        default backend."""
        backend = jax.default_backend()
        flavour = self.flavour or ("tpu" if backend == "tpu" else "gpu")
        interpret = self.interpret
        if interpret is None:
            interpret = backend not in ("gpu", "tpu")
        return dataclasses.replace(self, flavour=flavour, interpret=interpret)


def as_impl(impl) -> Impl | Pallas:
    """``impl`` as an `Impl` or a `Pallas`; raises naming ``impl``
    for anything else."""
    if isinstance(impl, Pallas | Impl):
        return impl
    if isinstance(impl, str) and impl in IMPLS:
        return Impl(impl)
    raise ValueError(
        f"impl: expected one of {IMPLS} (or rnnjax.kernels.Impl) or an "
        f"rnnjax.kernels.Pallas(...), got {impl!r}"
    )

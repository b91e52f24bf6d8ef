"""Running a cell over a sequence."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec

from rnnjax import _remat, _validate, kernels
from rnnjax.cells import base


@dataclasses.dataclass(frozen=True)
class UnrollOptions:
    """How a recurrence runs over time: which implementation, how many steps per
    loop iteration, and what reverse mode keeps. Every choice gives the same
    numbers (to float rounding); they differ in speed and memory.

    One value taken by `rnnjax.unroll`, `rnnjax.Stack.apply` and the
    Flax modules; hashable, so it can be a static argument of ``jax.jit``.

    Attributes:
      impl: the implementation of the recurrence, an
        `rnnjax.kernels.Impl` or its string: ``"auto"`` (the fastest valid
        one for the cell and platform), ``"scan"`` (plain ``lax.scan``, every
        cell), ``"fused"`` (fused-form cells), ``"associative"`` (a parallel scan,
        for cells linear in the state such as ``min_gru``), ``"parallel"`` and
        ``"chunkwise"`` (the mLSTM core's parallel form, quadratic in ``T``, and
        chunkwise form, linear in ``T``, for ``mlstm``; both run the scan when
        ``resets`` are given), ``"pallas"``
        (Pallas kernels for the plain LSTM and the GRU with reset after, GPU/TPU;
        reverse-mode derivatives only; interpreted on the CPU), ``"cudnn"``
        (cuDNN's LSTM on a CUDA GPU: the plain float32 LSTM, no resets,
        ``rec_mask`` or ``remat``; ``rnnjax.kernels.cudnn``); or an
        `rnnjax.kernels.Pallas` value, ``"pallas"`` with its options
        (flavour, interpreter, GPU design). Strings are stored as ``Impl``
        members, which compare equal to them.
      unroll: steps per loop iteration of ``lax.scan``.
      remat: memory for reverse mode, exactly the same numbers: ``None`` keeps
        each step's residuals (fastest); ``"step"`` keeps only the carry of each
        step and recomputes the gates in the backward pass (a plain ``lax.scan``
        whatever ``impl``); ``"chunk"`` keeps only the carry every ``chunk_size``
        steps and recomputes one chunk at a time with ``impl``'s kernel.
      chunk_size: steps per chunk for ``remat="chunk"`` (default
        ``ceil(sqrt(T))``).
    """

    impl: kernels.Impl | kernels.Pallas | str = "auto"
    unroll: int = 1
    remat: str | None = None
    chunk_size: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "impl", kernels.impl.as_impl(self.impl))
        if isinstance(self.unroll, bool) or not isinstance(self.unroll, int):
            raise ValueError(f"unroll: expected a positive int, got {self.unroll!r}")
        if self.unroll < 1:
            raise ValueError(f"unroll: expected a positive int, got {self.unroll!r}")
        _remat.check_remat(self.remat, self.chunk_size)


def unroll(
    cell,
    params,
    xs,
    *,
    carry=None,
    seq_lengths=None,
    reverse: bool = False,
    time_major: bool = False,
    resets=None,
    rec_mask=None,
    options: UnrollOptions | None = None,
):
    """Runs ``cell`` over the time axis of ``xs``.

    The input projection of every step is one matrix product before the recurrence
    (for ``fused``, a forward-only call on the CPU projects large inputs chunk by
    chunk inside the loop instead); the recurrence runs through ``impl``:
    ``"scan"`` (plain ``lax.scan``), ``"fused"`` (fused-form cells only),
    ``"associative"`` (a parallel scan, for cells linear in the state such as
    ``min_gru``), ``"parallel"``/``"chunkwise"`` (the mLSTM's forms),
    ``"pallas"`` or ``"auto"`` (the fastest valid one): see
    [`UnrollOptions`][rnnjax.unroll.UnrollOptions].

    Args:
      cell: an rnnjax cell.
      params: the cell's parameters (from ``cell.init``).
      xs: inputs ``(*B, T, I)``, or ``(T, *B, I)`` with ``time_major=True``; ``B``
        is any number of batch dimensions (none for one sequence).
      carry: the initial carry (``cell.initial_carry(B)`` when ``None``).
      seq_lengths: integer ``(*B,)``: valid lengths of right-padded sequences.
        Outputs past a sequence's length are zero and leave its carry unchanged, so
        the returned carry is the one after its last valid step. Lengths outside
        ``[0, T]`` are clipped (``rnnjax.check_lengths`` makes them an error).
        The inputs of padded steps are never read: NaN or inf there changes no
        output and no derivative.
      reverse: run from the end of each sequence to its start; with
        ``seq_lengths`` only the valid prefix is reversed. Outputs stay aligned
        with the inputs.
      time_major: ``xs`` (and ``resets``, and the returned ``ys``) are time-first.
      resets: boolean, laid out like ``xs`` without its feature axis: where true,
        the carry returns to the initial carry (``carry``) before that step, for
        episode boundaries. With ``reverse`` the flag stays with its step.
      rec_mask: optional ``(*B, K)`` multiplier of the recurrent product's operand
        (variational recurrent dropout; see ``rnnjax.stack``).
      options: an `UnrollOptions` (default ``UnrollOptions()``): the
        implementation (``impl``), steps per loop iteration (``unroll``) and what
        reverse mode keeps (``remat``, ``chunk_size``; ``benchmarks/RESULTS.md``
        has peak memory against ``T``).

    Returns:
      ``(carry, ys)``: the final carry and outputs ``(*B, T, Y)`` (time-major when
      ``time_major``).
    """
    if options is None:
        options = UnrollOptions()
    elif not isinstance(options, UnrollOptions):
        raise TypeError(
            f"options: expected an rnnjax.UnrollOptions, got {type(options).__name__}"
        )
    _validate.check_cell(cell)
    time_axis = -(base.event_ndim(cell) + 1)
    num_steps, batch_shape, carry_shape = _validate.check_xs(
        xs, time_major, base.event_ndim(cell)
    )
    base.check_params(cell, params, xs.shape[-1])
    cudnn = options.impl == kernels.Impl.CUDNN
    if cudnn:
        kernels.cudnn.check_supported(
            cell, resets=resets, rec_mask=rec_mask, remat=options.remat, dtype=xs.dtype
        )
    else:
        recurrence = kernels.select(cell, options.impl)
    expected = cell.initial_carry(carry_shape)
    if carry is None:
        carry = expected
    else:
        _validate.check_carry(carry, expected)
    lengths = _validate.check_lengths_arg(seq_lengths, batch_shape, num_steps)
    resets = _validate.check_resets(resets, batch_shape, num_steps, time_major)

    valid = None
    if lengths is not None:
        valid = _valid_mask(num_steps, lengths)  # (T, *B)
        # Once, in xs's own layout; the reversal below keeps padding in place.
        xs = _zero_padding(xs, valid if time_major else jnp.moveaxis(valid, 0, -1))
    if cudnn:
        empty = not (num_steps and math.prod(batch_shape))
        return _cudnn_unroll(
            cell, params, carry, xs, lengths, reverse, time_major, empty
        )
    xs = xs if time_major else jnp.moveaxis(xs, time_axis, 0)
    carry = _match_batch_sharding(carry, xs, len(batch_shape))
    carry = match_varying_axes(carry, (params, xs, resets, rec_mask))
    order = None
    if reverse:
        order = kernels.scan.reversal_order(num_steps, lengths, len(batch_shape))
        xs, resets = _permute(xs, order), _permute(resets, order)
    masks = dict(valid=valid, resets=resets, rec_mask=rec_mask)
    if options.remat is not None:
        carry, ys = _remat.run(
            recurrence,
            cell,
            params,
            carry,
            xs,
            remat=options.remat,
            chunk_size=options.chunk_size,
            unroll=options.unroll,
            **masks,
        )
    else:
        carry, ys = _project_and_recur(
            recurrence, cell, params, carry, xs, unroll=options.unroll, **masks
        )
    if reverse:
        ys = _permute(ys, order)  # the reversal is its own inverse
    return carry, ys if time_major else jnp.moveaxis(ys, 0, time_axis)


def _cudnn_unroll(cell, params, carry, xs, lengths, reverse, time_major, empty):
    """``impl="cudnn"``: one cuDNN call over ``(*B, T, I)``, batch-major
    (``kernels.cudnn``); the plain scan where there is nothing to run (``empty``:
    no step or no sequence)."""
    if empty:
        options = UnrollOptions(impl="scan")
        return unroll(
            cell, params, xs, carry=carry, seq_lengths=lengths, reverse=reverse,
            time_major=time_major, options=options,
        )  # fmt: skip
    xs = jnp.moveaxis(xs, 0, -2) if time_major else xs
    carry, ys = kernels.cudnn.unroll_layer(cell, params, carry, xs, lengths, reverse)
    return carry, jnp.moveaxis(ys, -2, 0) if time_major else ys


def _project_and_recur(
    recurrence, cell, params, carry, xs, *, unroll, valid, resets, rec_mask
):
    """The input projection of time-major ``xs`` and the recurrence over it.

    The fused kernel takes the projection inside where projecting chunk by chunk
    is faster (large projections lowered for the CPU, decided per lowering
    platform; values only, see ``kernels.fused.projected_recurrence``).
    """

    def project_then_recur(params, carry, xs, valid, resets, rec_mask):
        zs, bias = base.project_split(cell, params, xs)  # the step adds the bias
        inputs = kernels.StepInputs(zs, bias, valid, resets, rec_mask)
        return recurrence(cell, params, carry, inputs, unroll=unroll)

    operands = (params, carry, xs, valid, resets, rec_mask)
    if recurrence is kernels.fused_recurrence and xs.shape[0]:
        chunk = kernels.fused.projection_chunk(cell, params, xs)
        if chunk is not None:

            def in_chunks(params, carry, xs, valid, resets, rec_mask):
                return kernels.fused.projected_recurrence(
                    cell, params, carry, xs, valid=valid, resets=resets,
                    rec_mask=rec_mask, unroll=unroll, chunk=chunk,
                )  # fmt: skip

            # Chosen for the platform the program is lowered for (the CPU only).
            return lax.platform_dependent(
                *operands, cpu=in_chunks, default=project_then_recur
            )
    return project_then_recur(*operands)


def _match_batch_sharding(carry, xs, batch_ndim):
    """Gives the carry's batch dimensions the explicit sharding of the batch
    dimensions of time-major ``xs (T, *B, ...)``, so that the carry keeps one type
    through the loop; a no-op unless ``xs`` is explicitly sharded."""
    if not base.sharded_in_type(xs):
        return carry
    sharding = jax.typeof(xs).sharding
    spec = tuple(sharding.spec) + (None,) * xs.ndim
    batch_spec = spec[1 : 1 + batch_ndim]

    def reshard(leaf):
        if leaf.ndim < batch_ndim:  # not per-sequence (a step counter)
            return leaf
        rest = (None,) * (leaf.ndim - batch_ndim)
        # xs's own (abstract) mesh: no mesh context needed
        target = NamedSharding(sharding.mesh, PartitionSpec(*batch_spec, *rest))
        return jax.sharding.reshard(leaf, target)

    return jax.tree.map(reshard, carry)


def match_varying_axes(carry, operands):
    """Inside ``jax.shard_map``: makes every carry leaf vary over the manual mesh
    axes that any operand varies over, as the carry after one step does (a zero
    initial carry varies over none), so that the loop's carry keeps one type."""
    axes = frozenset().union(*(base.varying_axes(x) for x in jax.tree.leaves(operands)))
    if not axes:
        return carry

    def vary(leaf):
        missing = tuple(sorted(axes - base.varying_axes(leaf)))
        return lax.pcast(leaf, missing, to="varying") if missing else leaf

    return jax.tree.map(vary, carry)


def _valid_mask(num_steps, lengths):
    """``(T, *B)``: step ``t`` is inside sequence ``b``."""
    steps = jnp.arange(num_steps).reshape((num_steps,) + (1,) * lengths.ndim)
    return steps < lengths[None]


def _zero_padding(xs, valid):
    """``xs`` with zeros at padded steps, where ``valid`` (``xs``'s leading axes:
    ``(T, *B)`` time-major, ``(*B, T)`` batch-major) is false. NaN or inf there
    would reach every derivative: the reverse pass of a ``where`` multiplies the
    unselected branch's derivatives by zero, and ``0 * nan`` is NaN. Padded
    steps' outputs and carries are discarded anyway."""
    mask = valid.reshape(valid.shape + (1,) * (xs.ndim - valid.ndim))
    return jnp.where(mask, xs, jnp.zeros((), xs.dtype))


def _permute(x, order):
    """Gathers ``x (T, *B, ...)`` along time by ``order``."""
    if x is None:
        return None
    if order.ndim == 1:
        return x[order]
    idx = order.reshape(order.shape + (1,) * (x.ndim - order.ndim))
    return jnp.take_along_axis(x, idx, axis=0)

"""What the linen and NNX modules share (no Flax imported here): the stack they
build, and Flax's contract for cells (carries, initialisers, dtypes)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from rnnjax.cells.base import ACTIVATIONS
from rnnjax.cells.conv_lstm import conv_lstm
from rnnjax.cells.gru import gru, mgu
from rnnjax.cells.lstm import LSTMState, lstm
from rnnjax.cells.simple import simple_rnn
from rnnjax.layers import Stack, stack

STACK_DEFAULTS = dict(
    num_layers=None,
    bidirectional=False,
    dropout=0.0,
    input_dropout=0.0,
    recurrent_dropout=0.0,
    time_major=False,
)

# Flax's defaults (flax.linen.recurrent): LeCun-normal input kernels, orthogonal
# recurrent kernels, zero biases, zero carries.
lecun_normal = jax.nn.initializers.lecun_normal()
zeros = jax.nn.initializers.zeros
ones = jax.nn.initializers.ones


def orthogonal(key, shape, dtype=jnp.float32):
    """Orthogonal, drawn in float32 and cast (the QR has no half-precision form;
    Flax's NNX ``modified_orthogonal``)."""
    return jax.nn.initializers.orthogonal()(key, shape, jnp.float32).astype(dtype)


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


# ------------------------------------------------------------------------ carries


def to_flax_carry(carry):
    """An `LSTMState` as Flax's plain tuple ``(c, h)`` (``(c, h, gates)`` with
    full gate recurrence); any other carry unchanged."""
    if isinstance(carry, LSTMState):
        return tuple(leaf for leaf in carry if leaf is not None)
    return carry


def from_flax_carry(cell, carry, batch_shape):
    """A Flax ``(c, h)`` tuple as the `LSTMState` ``cell`` expects (when its
    `initial_carry` for ``batch_shape`` is one); any other carry unchanged."""
    if isinstance(carry, LSTMState) or not isinstance(carry, tuple | list):
        return carry
    try:
        template = jax.eval_shape(lambda: cell.initial_carry(batch_shape))
    except (ValueError, TypeError):
        return carry
    if isinstance(template, LSTMState) and len(carry) in (2, 3):
        return LSTMState(*carry)
    return carry


def stack_to_flax(carries):
    """``carry[layer][direction]`` with each `LSTMState` as ``(c, h)``."""
    return tuple(tuple(to_flax_carry(c) for c in layer) for layer in carries)


def stack_from_flax(model: Stack, carries, batch_shape):
    """The inverse of `stack_to_flax` (``None`` stays ``None``)."""
    if carries is None or not isinstance(carries, tuple | list):
        return carries
    expected = model.initial_carry(batch_shape)
    if len(carries) != len(expected):
        return carries  # Stack.apply names the mismatch

    def layer(got, want):
        if not isinstance(got, tuple | list) or len(got) != len(want):
            return got
        return tuple(
            LSTMState(*g)
            if isinstance(w, LSTMState)
            and isinstance(g, tuple | list)
            and not isinstance(g, LSTMState)
            else g
            for g, w in zip(got, want, strict=True)
        )

    return tuple(layer(g, w) for g, w in zip(carries, expected, strict=True))


def initial_flax_carry(cell, input_shape, carry_init, make_keys, dtype):
    """Flax's ``initialize_carry``: the cell's carry for inputs ``(*B, I)`` in
    Flax's form, each leaf ``carry_init(key, shape, dtype)`` (zeros when
    ``carry_init`` is None); ``make_keys(n)`` gives the ``n`` keys, one per leaf
    (called only with a ``carry_init``)."""
    template = to_flax_carry(cell.initial_carry(tuple(input_shape[:-1])))
    leaves, treedef = jax.tree.flatten(template)
    if carry_init is None:
        values = [jnp.zeros(leaf.shape, dtype) for leaf in leaves]
    else:
        keys = make_keys(len(leaves))
        values = [
            carry_init(k, leaf.shape, dtype)
            for k, leaf in zip(keys, leaves, strict=True)
        ]
    return jax.tree.unflatten(treedef, values)


# -------------------------------------------------------------- one Flax step


def compute_dtype(dtype, inputs_dtype, param_dtype):
    """Flax's computation dtype: ``dtype``, else the inputs' and parameters'
    promoted dtype."""
    if dtype is not None:
        return jnp.dtype(dtype)
    return jnp.result_type(inputs_dtype, param_dtype)


def flax_step(cell, params, carry, inputs, cdtype=None):
    """``cell.step`` with Flax's contract: ``carry`` and the new carry in Flax's
    form; with ``cdtype``, the inputs cast to it and each new carry leaf (and the
    output) of the dtype Flax's arithmetic gives, the promotion of ``cdtype`` and
    the old leaf's (so a carry of the parameters' dtype keeps its dtype through
    ``nn.RNN``'s scan)."""
    batch_shape = tuple(inputs.shape[:-1])
    if cdtype is not None:
        inputs = inputs.astype(cdtype)
    old = from_flax_carry(cell, carry, batch_shape)
    new, y = cell.step(params, old, inputs)
    new = to_flax_carry(new)
    if cdtype is None:
        return new, y
    flax_old = to_flax_carry(old)
    new = jax.tree.map(
        lambda n, o: n.astype(jnp.result_type(cdtype, o.dtype)), new, flax_old
    )
    y_dtype = jnp.result_type(cdtype, *[o.dtype for o in jax.tree.leaves(flax_old)])
    return new, y.astype(y_dtype)


def cast_params(params, param_dtype):
    return jax.tree.map(lambda p: p.astype(param_dtype), params)


# -------------------------------------------------------- Flax's cells in rnnjax


def activation(fn):
    """rnnjax's name for one of its activations (so the cell keeps the fused and
    Pallas kernels' default form), else ``fn`` itself."""
    for name, known in ACTIVATIONS.items():
        if fn is known:
            return name
    return fn


@dataclasses.dataclass(frozen=True)
class PerGate:
    """An initialiser of a ``(..., G*H)`` array that calls ``init`` once per gate
    block ``(..., H)``, with ``param_dtype``, as Flax's separate ``Dense`` per
    gate do (an orthogonal recurrent kernel per gate, ...). A value (equal when
    its fields are), so a cell rebuilt from the same module fields is equal to the
    last one and jit-compiled functions keyed on it are reused."""

    init: Callable
    hidden: int
    param_dtype: Any

    def __call__(self, key, shape, dtype=None):
        del dtype
        blocks, rest = divmod(shape[-1], self.hidden)
        if rest or not blocks:  # not gate blocks (an LSTMP projection, ...)
            return self.init(key, shape, self.param_dtype)
        keys = jax.random.split(key, blocks)
        width = (*shape[:-1], self.hidden)
        parts = [self.init(k, width, self.param_dtype) for k in keys]
        return jnp.concatenate(parts, axis=-1)


@dataclasses.dataclass(frozen=True)
class MGUBias:
    """Flax's ``MGUCell`` biases in rnnjax's layout: ``b (2H,)`` from
    ``forget_bias_init`` (block ``f``) and ``activation_bias_init`` (block
    ``n``); ``b_hn (H,)`` from ``activation_bias_init``."""

    forget: Callable
    activation: Callable
    hidden: int
    param_dtype: Any

    def __call__(self, key, shape, dtype=None):
        del dtype
        if shape[-1] == self.hidden:  # b_hn
            return self.activation(key, shape, self.param_dtype)
        k_f, k_n = jax.random.split(key)
        size = (self.hidden,)
        return jnp.concatenate(
            [
                self.forget(k_f, size, self.param_dtype),
                self.activation(k_n, size, self.param_dtype),
            ],
            axis=-1,
        )


@dataclasses.dataclass(frozen=True)
class InDtype:
    """``init`` called with ``param_dtype`` whatever dtype it is asked for."""

    init: Callable
    param_dtype: Any

    def __call__(self, key, shape, dtype=None):
        del dtype
        return self.init(key, shape, self.param_dtype)


def flax_lstm(features, args, options):
    """``rnnjax.lstm`` with the meaning of Flax's ``LSTMCell`` arguments ``args``
    (gate order ``i, f, g, o``; no forget bias beyond ``bias_init``), then the
    rnnjax ``options`` on top."""
    act = activation(args["activation_fn"])
    kwargs = dict(
        forget_bias=0.0,
        gate_activation=activation(args["gate_fn"]),
        input_activation=act,
        output_activation=act,
        dtype=args["dtype"],
        **_dense_inits(features, args),
    )
    return lstm(features, **{**kwargs, **options})


def flax_gru(features, args, options):
    """``rnnjax.gru`` (reset after the product, with ``b_hn``) with the meaning of
    Flax's ``GRUCell`` arguments."""
    kwargs = dict(
        gate_activation=activation(args["gate_fn"]),
        activation=activation(args["activation_fn"]),
        dtype=args["dtype"],
        **_dense_inits(features, args),
    )
    return gru(features, **{**kwargs, **options})


def flax_simple(features, args, options):
    """``rnnjax.simple_rnn`` with the meaning of Flax's ``SimpleCell`` arguments."""
    act = activation(args["activation_fn"])
    kwargs = dict(
        activation=act if act in ("tanh", "relu") else args["activation_fn"],
        residual=args["residual"],
        dtype=args["dtype"],
        **_dense_inits(features, args),
    )
    return simple_rnn(features, **{**kwargs, **options})


def flax_mgu(features, args, options):
    """``rnnjax.mgu`` in Flax's form (the gate keeps the state, the reset after
    the product) with the meaning of Flax's ``MGUCell`` arguments: the forget
    block's bias from ``forget_bias_init``, the candidate's from
    ``activation_bias_init``."""
    pd = args["param_dtype"]
    bias_init = MGUBias(
        args["forget_bias_init"], args["activation_bias_init"], features, pd
    )
    kwargs = dict(
        reset_gate=args["reset_gate"],
        reset_after=True,
        gate_keeps=True,
        gate_activation=activation(args["gate_fn"]),
        activation=activation(args["activation_fn"]),
        dtype=args["dtype"],
        kernel_init=PerGate(args["kernel_init"], features, pd),
        recurrent_init=PerGate(args["recurrent_kernel_init"], features, pd),
        bias_init=bias_init,
    )
    return mgu(features, **{**kwargs, **options})


def flax_conv_lstm(features, args, options):
    """``rnnjax.conv_lstm`` with the meaning of Flax's ``ConvLSTMCell`` arguments
    (no peepholes; "SAME" padding and stride 1 only, the only ones under which
    the state keeps its shape from step to step)."""
    strides = args["strides"]
    if strides is not None and any(s != 1 for s in _as_tuple(strides)):
        raise ValueError(
            f"strides: expected None or 1 along every axis (the state must keep "
            f"its spatial shape from step to step), got {strides!r}"
        )
    padding = args["padding"]
    if not (isinstance(padding, str) and padding.upper() == "SAME"):
        raise ValueError(
            f"padding: expected 'SAME' (the state must keep its spatial shape "
            f"from step to step), got {padding!r}"
        )
    if not args["use_bias"]:
        raise ValueError("use_bias: expected True (rnnjax's ConvLSTM has a bias)")
    kernel_size = tuple(_as_tuple(args["kernel_size"]))
    pd = args["param_dtype"]
    kwargs = dict(
        peephole=False,
        forget_bias=1.0,
        dtype=args["dtype"],
        kernel_init=InDtype(lecun_normal, pd),
        recurrent_init=InDtype(lecun_normal, pd),
        bias_init=InDtype(zeros, pd),
    )
    return conv_lstm(features, kernel_size, **{**kwargs, **options})


def _dense_inits(features, args) -> dict[str, Any]:
    pd = args["param_dtype"]
    return dict(
        kernel_init=PerGate(args["kernel_init"], features, pd),
        recurrent_init=PerGate(args["recurrent_kernel_init"], features, pd),
        bias_init=PerGate(args["bias_init"], features, pd),
    )


def _as_tuple(x):
    return tuple(x) if isinstance(x, Sequence) else (x,)

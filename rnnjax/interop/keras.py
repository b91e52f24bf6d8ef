"""Conversion from Keras 3's ``LSTM`` and ``GRU`` layers (and ``Bidirectional``).

Keras stores ``kernel (I, G*H)``, ``recurrent_kernel (H, G*H)`` and ``bias``, in
the ``x @ W`` convention rnnjax uses, so the matrices are copied as they are, up to
the gate order:

- LSTM: Keras ``i, f, c, o`` is rnnjax's ``i, f, g, o``; ``bias (4H,)`` is ``b``.
  (``unit_forget_bias`` only initialises the bias, so it is already in the values.)
- GRU: Keras ``z, r, h`` is reordered to rnnjax's ``r, z, n``.
  ``reset_after=True`` (Keras' default): ``bias (2, 3H)`` is the input bias and the
  recurrent bias; ``b = input + recurrent`` for ``r, z``, ``b[2H:] = input[h]`` and
  ``b_hn = recurrent[h]``; the cell is ``rnnjax.gru(H)``.
  ``reset_after=False``: ``bias (3H,)`` is ``b``; the cell is
  ``rnnjax.gru(H, reset_after=False)``.
- ``use_bias=False`` gives zero biases.

Keras returns ``[ys, h]`` (GRU) or ``[ys, h, c]`` (LSTM) with ``return_state``;
rnnjax's carry ``carry[0][0]`` is ``h`` or ``LSTMState(c, h, None)``.

What differs with masks (variable lengths). rnnjax's ``seq_lengths`` gives the
same outputs and states as Keras' ``mask`` at the valid steps, but:

- at masked (padded) steps of a one-direction layer, Keras repeats the last valid
  output; rnnjax returns zeros there (as PyTorch's packed sequences do);
- when a ``keras.layers.Masking`` layer meets ``initial_state`` in a functional
  model, Keras returns the final state of the unmasked run (the padding stepped
  through as inputs); rnnjax returns the state at each sequence's last valid step
  (as it does without ``initial_state``, and as Keras does with an explicit
  ``mask`` argument).

tests/interop/test_keras.py checks both, so this text changes when Keras does.

keras is never imported here: layers are recognised by their class names.
"""

from __future__ import annotations

import jax.numpy as jnp

from rnnjax.cells.gru import gru
from rnnjax.cells.lstm import lstm
from rnnjax.interop._common import f32, type_name
from rnnjax.layers import stack

_SUPPORTED = ("LSTM", "GRU", "Bidirectional")


def from_keras(layer):
    """Converts a built Keras 3 ``LSTM`` or ``GRU`` layer to rnnjax.

    Args:
      layer: a built ``keras.layers.LSTM`` or ``keras.layers.GRU`` (call it once or
        ``layer.build(input_shape)`` first) with the default activations (``tanh``,
        recurrent ``sigmoid``), or a ``keras.layers.Bidirectional`` wrapping one
        (``merge_mode="concat"``).

    Returns:
      ``(model, params)``: a one-layer [`rnnjax.Stack`][rnnjax.Stack] (batch-first, as
      Keras; the layer's ``dropout`` and ``recurrent_dropout`` become the stack's
      variational ``input_dropout`` and ``recurrent_dropout``) and float32
      parameters ``params[0][direction]``. ``model.apply(params, xs)`` returns
      ``(carry, ys)`` with ``ys`` the layer's ``return_sequences=True`` output and
      ``carry[0][0]`` its ``return_state`` states. With variable lengths
      (``seq_lengths``) padded outputs are zero and the states are those at the
      last valid step; Keras differs there (the module docstring says how).

    Raises:
      TypeError: ``layer`` is not one of the layers above.
      ValueError: an unbuilt layer, other activations, ``go_backwards=True`` on a
        layer of its own, or another ``merge_mode``.
    """
    kind = type(layer).__name__
    if kind not in _SUPPORTED or not hasattr(layer, "get_config"):
        raise TypeError(
            "layer: expected a keras.layers.LSTM, keras.layers.GRU or "
            f"keras.layers.Bidirectional, got {type_name(layer)}"
        )
    if not layer.built:
        raise ValueError(
            f"layer: expected a built {kind} (call it once, or "
            "layer.build(input_shape)), got an unbuilt one"
        )
    if kind == "Bidirectional":
        return _bidirectional(layer)
    if layer.go_backwards:
        raise ValueError(
            f"layer: {kind} with go_backwards=True is not supported (an rnnjax.Stack "
            "runs its first direction forwards). Keras returns its outputs in "
            "reversed time order; the same run is "
            "rnnjax.unroll(model.cells[0], params[0][0], xs, reverse=True) with "
            "ys[..., ::-1, :], or wrap the layer in keras.layers.Bidirectional"
        )
    cell, p = _convert(layer)
    model = stack(
        cell,
        input_dropout=float(layer.dropout),
        recurrent_dropout=float(layer.recurrent_dropout),
    )
    return model, ((p,),)


def _bidirectional(layer):
    if layer.merge_mode != "concat":
        raise ValueError(
            f"layer: expected Bidirectional(merge_mode='concat'), got merge_mode="
            f"{layer.merge_mode!r}"
        )
    fwd, bwd = layer.forward_layer, layer.backward_layer
    for name, sub, backwards in (("forward", fwd, False), ("backward", bwd, True)):
        if type(sub).__name__ not in ("LSTM", "GRU"):
            raise TypeError(
                f"layer: expected a Bidirectional LSTM or GRU, got a {name} layer "
                f"{type_name(sub)}"
            )
        if bool(sub.go_backwards) != backwards:
            raise ValueError(
                f"layer: expected the {name} layer to have go_backwards={backwards}, "
                f"got {sub.go_backwards}"
            )
    cell_f, p_f = _convert(fwd)
    cell_b, p_b = _convert(bwd)
    if cell_f != cell_b or (fwd.dropout, fwd.recurrent_dropout) != (
        bwd.dropout,
        bwd.recurrent_dropout,
    ):
        raise ValueError(
            "layer: expected forward and backward layers of the same configuration, "
            f"got {cell_f} and {cell_b}"
        )
    model = stack(
        cell_f,
        bidirectional=True,
        input_dropout=float(fwd.dropout),
        recurrent_dropout=float(fwd.recurrent_dropout),
    )
    return model, ((p_f, p_b),)


def _activation_name(fn) -> str:
    return getattr(fn, "__name__", repr(fn))


def _convert(layer):
    """``(cell, params)`` of one Keras LSTM or GRU layer."""
    kind = type(layer).__name__
    cell_k = layer.cell
    for attr, want in (("activation", "tanh"), ("recurrent_activation", "sigmoid")):
        got = _activation_name(getattr(cell_k, attr))
        if got != want:
            raise ValueError(
                f"layer: rnnjax's {kind} uses {attr}={want!r}; got {got!r}"
            )
    H = int(cell_k.units)
    w_x, w_h = f32(cell_k.kernel), f32(cell_k.recurrent_kernel)
    if kind == "LSTM":
        b = f32(cell_k.bias) if cell_k.use_bias else jnp.zeros((4 * H,), jnp.float32)
        return lstm(H, forget_bias=0.0), {"w_x": w_x, "w_h": w_h, "b": b}

    def rzn(a):  # Keras z, r, h -> rnnjax r, z, n (last axis)
        return jnp.concatenate([a[..., H : 2 * H], a[..., :H], a[..., 2 * H :]], -1)

    p = {"w_x": rzn(w_x), "w_h": rzn(w_h)}
    reset_after = bool(cell_k.reset_after)
    if not cell_k.use_bias:
        bias = jnp.zeros((2, 3 * H) if reset_after else (3 * H,), jnp.float32)
    else:
        bias = f32(cell_k.bias)
    if reset_after:
        b_in, b_rec = rzn(bias[0]), rzn(bias[1])
        p["b"] = jnp.concatenate([b_in[: 2 * H] + b_rec[: 2 * H], b_in[2 * H :]])
        p["b_hn"] = b_rec[2 * H :]
    else:
        p["b"] = rzn(bias)
    return gru(H, reset_after=reset_after), p

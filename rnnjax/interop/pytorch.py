"""Conversion to and from PyTorch's ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU``.

PyTorch stores ``weight_ih_l{k}[_reverse] (G*H, I)``, ``weight_hh_l{k}[_reverse]
(G*H, K)``, ``bias_ih``, ``bias_hh (G*H,)`` and, for an LSTM with ``proj_size=P``,
``weight_hr_l{k}[_reverse] (P, H)``; it computes ``x W_ih^T + b_ih + h W_hh^T +
b_hh``. rnnjax computes ``x w_x + b + h w_h``, so per layer and direction:

- ``w_x = weight_ih.T`` ``(I, G*H)``, ``w_h = weight_hh.T`` ``(K, G*H)``,
  ``w_hr = weight_hr.T`` ``(H, P)``; the gate orders are the same (LSTM ``i, f, g,
  o``; GRU ``r, z, n``; Elman one block).
- ``b = bias_ih + bias_hh``, except the GRU's ``n`` block: ``b[2H:] = bias_ih[2H:]``
  and ``b_hn = bias_hh[2H:]`` (it is multiplied by the reset gate). ``bias=False``
  gives zero biases.
- Back to PyTorch: ``bias_ih = b`` and ``bias_hh = 0`` (GRU: ``[0, 0, b_hn]``).

States: PyTorch's ``h_n``/``h_0`` are ``(L*D, *B, H_out)`` and ``c_n``/``c_0``
``(L*D, *B, H)``, index ``layer * D + direction``; rnnjax's carry is
``carry[layer][direction]`` (an array, or an ``LSTMState(c, h, gates)``).

torch is imported inside the functions only.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from rnnjax.cells.base import Initializers
from rnnjax.cells.gru import GRU, gru
from rnnjax.cells.lstm import LSTM, LSTMState, lstm
from rnnjax.cells.simple import SimpleRNN, simple_rnn
from rnnjax.interop._common import f32, type_name
from rnnjax.layers import Bidirectional, Layer, Stack, concatenate, stack

_MODES = ("RNN_TANH", "RNN_RELU", "LSTM", "GRU")


def _names(layer: int, direction: int) -> dict[str, str]:
    sfx = f"_l{layer}" + ("_reverse" if direction else "")
    return {
        k: f"{k}{sfx}" for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    } | {"weight_hr": f"weight_hr{sfx}"}


# ------------------------------------------------------------------------ from torch


def from_torch(module):
    """Converts a PyTorch ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` to rnnjax.

    Args:
      module: the torch module (any device and float dtype; weights are copied).

    Returns:
      ``(model, params)``: an [`rnnjax.Stack`][rnnjax.Stack] (``time_major = not
      batch_first``, the module's ``num_layers``, ``bidirectional`` and ``dropout``)
      of ``simple_rnn(H, activation)``, ``lstm(H, forget_bias=0.0, proj_size=P)`` or
      ``gru(H)`` cells, and float32 parameters ``params[layer][direction]``.
      ``model.apply(params, xs, seq_lengths=lengths)`` equals the module run on
      ``pack_padded_sequence(xs, lengths, enforce_sorted=False)`` then
      ``pad_packed_sequence`` (padded outputs zero); `torch_state` turns the
      returned carry into ``h_n`` (and ``c_n``), `torch_carry` turns
      ``h_0`` (and ``c_0``) into an initial carry.
    """
    import torch

    if not isinstance(module, torch.nn.RNN | torch.nn.LSTM | torch.nn.GRU):
        raise TypeError(
            "module: expected a torch.nn.RNN, torch.nn.LSTM or torch.nn.GRU, got "
            f"{type_name(module)}"
        )
    mode = module.mode
    if mode not in _MODES:
        raise ValueError(f"module: unsupported mode {mode!r}")
    H, P = module.hidden_size, getattr(module, "proj_size", 0) or None
    if mode == "LSTM":
        cell = lstm(H, forget_bias=0.0, proj_size=P)
    elif mode == "GRU":
        cell = gru(H)
    else:
        cell = simple_rnn(H, activation="tanh" if mode == "RNN_TANH" else "relu")
    model = stack(
        cell,
        num_layers=module.num_layers,
        bidirectional=module.bidirectional,
        dropout=float(module.dropout),
        time_major=not module.batch_first,
    )
    weights = dict(module.named_parameters())
    params = []
    for layer in range(model.num_layers):
        params.append(
            tuple(
                _params_from_torch(cell, weights, _names(layer, d), module.bias)
                for d in range(model.num_directions)
            )
        )
    return model, tuple(params)


def _params_from_torch(cell, weights, names, has_bias):
    H = cell.hidden_size
    p = {
        "w_x": f32(weights[names["weight_ih"]]).T,
        "w_h": f32(weights[names["weight_hh"]]).T,
    }
    width = p["w_x"].shape[1]
    if has_bias:
        b_ih = f32(weights[names["bias_ih"]])
        b_hh = f32(weights[names["bias_hh"]])
    else:
        b_ih = b_hh = jnp.zeros((width,), jnp.float32)
    if isinstance(cell, GRU):
        p["b"] = jnp.concatenate([b_ih[: 2 * H] + b_hh[: 2 * H], b_ih[2 * H :]])
        p["b_hn"] = b_hh[2 * H :]
    else:
        p["b"] = b_ih + b_hh
    if isinstance(cell, LSTM) and cell.proj_size is not None:
        p["w_hr"] = f32(weights[names["weight_hr"]]).T
    return p


# -------------------------------------------------------------------------- to torch


def to_torch(model, params, *, bias: bool = True):
    """Builds the PyTorch module equal to ``model`` with ``params`` loaded.

    Args:
      model: an [`rnnjax.Stack`][rnnjax.Stack] whose cells are all the same
        ``simple_rnn``, plain ``lstm`` (optionally ``proj_size``) or ``gru``
        (``reset_after=True``). Initialisers, ``forget_bias`` (an initial value)
        and the compute ``dtype`` are not part of the module and are ignored.
      params: the model's parameters ``params[layer][direction]``.
      bias: build the module with biases (``bias_ih``, ``bias_hh``). With
        ``False`` every bias in ``params`` must be zero.

    Returns:
      A float32 ``torch.nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` (``batch_first = not
      model.time_major``, same ``num_layers``, ``bidirectional``, ``dropout``), in
      training mode as torch builds it: call ``.eval()`` to disable dropout.
      It computes the same function as ``model``, but its state dict is not
      the one a round trip would give back: rnnjax keeps one bias ``b`` where
      PyTorch has two, so ``bias_ih`` comes back as ``b`` and ``bias_hh`` as zeros
      (for the GRU, ``bias_ih = [b_r, b_z, b_n]`` and ``bias_hh = [0, 0, b_hn]``).

    Raises:
      TypeError: ``model`` is not a Stack.
      ValueError: a configuration PyTorch cannot express (peephole, layer norm,
        coupled or missing gates, other activations, full gate recurrence, GRU
        with ``reset_after=False``, other cell types, different cells per layer,
        variational dropout), or ``params`` that do not fit ``model``.
    """
    import torch

    cell = _torch_cell(model)
    kwargs = _module_kwargs(model, cell)
    size = _check_params(model, params)
    H = cell.hidden_size
    if isinstance(cell, SimpleRNN):
        cls = torch.nn.RNN
        kwargs["nonlinearity"] = cell.activation
    elif isinstance(cell, LSTM):
        cls = torch.nn.LSTM
        kwargs["proj_size"] = cell.proj_size or 0
    else:
        cls = torch.nn.GRU
    module = cls(size, H, bias=bias, dtype=torch.float32, **kwargs)
    state = _state_dict(cell, model, params, bias)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return module


def _torch_cell(model):
    """The one cell of ``model`` PyTorch can express, or an error saying why not."""
    if not isinstance(model, Stack):
        raise TypeError(
            f"model: expected an rnnjax.Stack (see rnnjax.stack), got "
            f"{type_name(model)}"
        )
    _check_torch_layers(model)
    norm = lambda c: dataclasses.replace(c, dtype=None, inits=Initializers())
    first = norm(model.cells[0])
    if isinstance(first, LSTM):
        first = dataclasses.replace(first, forget_bias=0.0)
    for i, c in enumerate(model.cells[1:], 1):
        other = norm(c)
        if isinstance(other, LSTM):
            other = dataclasses.replace(other, forget_bias=0.0)
        if other != first:
            raise ValueError(
                "model: PyTorch modules repeat one cell in every layer; expected "
                f"cells equal to cells[0] = {first}, got cells[{i}] = {other}"
            )
    if isinstance(first, SimpleRNN | GRU | LSTM):
        bad = _inexpressible(first)
    else:
        bad = [f"cell type {type(first).__name__}"]
    if bad:
        raise ValueError(
            "model: PyTorch's nn.RNN, nn.LSTM and nn.GRU cannot express "
            + ", ".join(bad)
        )
    return first


def _check_torch_layers(model) -> None:
    """Every layer a forward `Layer`, or every layer a concatenating
    `Bidirectional` of one cell, as PyTorch's modules run them."""
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Layer) and not model.bidirectional:
            bad = "a reversed Layer" if layer.reverse else None
        elif isinstance(layer, Bidirectional) and model.bidirectional:
            bad = None
            if layer.merge is not concatenate:
                bad = f"a Bidirectional with merge={layer.merge!r}"
            elif layer.forward.cell != layer.backward.cell:
                bad = "a Bidirectional of two different cells"
        else:
            bad = "a stack mixing Layer and Bidirectional"
        if bad:
            raise ValueError(
                "model: PyTorch's modules run every layer forwards, or every layer "
                "both ways with one cell and concatenated outputs; got "
                f"{bad} at layers[{i}]"
            )


def _inexpressible(cell) -> list[str]:
    if isinstance(cell, GRU):
        defaults = {
            "reset_after": True,
            "gate_activation": "sigmoid",
            "activation": "tanh",
        }
        return [
            f"GRU {k}={getattr(cell, k)!r}"
            for k, v in defaults.items()
            if getattr(cell, k) != v
        ]
    if isinstance(cell, SimpleRNN):
        bad = [] if cell.activation in ("tanh", "relu") else ["activation"]
        bad += ["residual"] if cell.residual else []
        return [f"SimpleRNN {k}={getattr(cell, k)!r}" for k in bad]
    if not isinstance(cell, LSTM):
        return []
    defaults = {
        "peephole": False,
        "coupled": False,
        "input_gate": True,
        "forget_gate": True,
        "output_gate": True,
        "input_activation": "tanh",
        "output_activation": "tanh",
        "gate_activation": "sigmoid",
        "full_gate_recurrence": False,
        "layer_norm": False,
    }
    return [
        f"LSTM {k}={getattr(cell, k)!r}"
        for k, v in defaults.items()
        if getattr(cell, k) != v
    ]


def _module_kwargs(model, cell) -> dict:
    bad = [
        f"{k}={getattr(model, k)}"
        for k in ("input_dropout", "recurrent_dropout")
        if getattr(model, k)
    ]
    if bad:
        raise ValueError(
            "model: PyTorch's recurrent modules have no variational dropout; "
            f"expected input_dropout=0 and recurrent_dropout=0, got {', '.join(bad)}"
        )
    return {
        "num_layers": model.num_layers,
        "batch_first": not model.time_major,
        "dropout": model.dropout,
        "bidirectional": model.bidirectional,
    }


def _check_params(model, params) -> int:
    """Checks ``params[layer][direction]`` against ``model``; returns ``I``."""
    ok = (
        isinstance(params, tuple | list)
        and len(params) == model.num_layers
        and all(
            isinstance(p, tuple | list) and len(p) == model.num_directions
            for p in params
        )
    )
    if not ok:
        raise ValueError(
            f"params: expected a tuple of {model.num_layers} layer(s), each a tuple "
            f"of {model.num_directions} direction parameters (see Stack.init), got "
            f"{type(params).__name__} of length {getattr(params, '__len__', None)}"
        )
    try:
        input_size = params[0][0]["w_x"].shape[0]
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise ValueError(
            f"params: expected cell parameters with 'w_x', got {params[0][0]!r}"
        ) from e
    size = input_size
    for cell, layer in zip(model.cells, params, strict=True):
        for p in layer:
            cell.check_params(p, input_size=size)
        size = cell.output_size * model.num_directions
    return input_size


def _state_dict(cell, model, params, bias: bool) -> dict[str, np.ndarray]:
    """PyTorch's ``state_dict`` (as float32 NumPy arrays) for ``params``."""
    H, out = cell.hidden_size, {}
    for layer in range(model.num_layers):
        for d in range(model.num_directions):
            p = {k: np.array(v, np.float32) for k, v in params[layer][d].items()}
            names = _names(layer, d)
            out[names["weight_ih"]] = np.ascontiguousarray(p["w_x"].T)
            out[names["weight_hh"]] = np.ascontiguousarray(p["w_h"].T)
            b_ih, b_hh = p["b"], np.zeros_like(p["b"])
            if isinstance(cell, GRU):
                b_hh[2 * H :] = p["b_hn"]
            if bias:
                out[names["bias_ih"]], out[names["bias_hh"]] = b_ih, b_hh
            elif b_ih.any() or b_hh.any():
                raise ValueError(
                    f"bias: False needs zero biases, but params[{layer}][{d}] has a "
                    "non-zero 'b'" + (" or 'b_hn'" if isinstance(cell, GRU) else "")
                )
            if "w_hr" in p:
                out[names["weight_hr"]] = np.ascontiguousarray(p["w_hr"].T)
    return out


# -------------------------------------------------------------------------- states


def torch_state(carry):
    """PyTorch's final state from rnnjax's final carry.

    Args:
      carry: ``carry[layer][direction]`` as returned by ``Stack.apply``.

    Returns:
      ``h_n`` ``(L*D, *B, H_out)``, or ``(h_n, c_n)`` when the cells are LSTMs
      (``c_n`` is ``(L*D, *B, H)``), as jnp arrays (differentiable; convert with
      ``torch.from_numpy(np.asarray(h_n))``). Index ``layer * D + direction``.
    """
    ok = isinstance(carry, tuple | list) and all(
        isinstance(c, tuple | list) and c for c in carry
    )
    if not ok or not carry:
        raise ValueError(
            "carry: expected carry[layer][direction] (a tuple of tuples, as "
            f"Stack.apply returns), got {type(carry).__name__}"
        )
    flat = [c for layer in carry for c in layer]
    if all(isinstance(c, LSTMState) for c in flat):
        return _stack_leaf([c.h for c in flat], "h"), _stack_leaf(
            [c.c for c in flat], "c"
        )
    if any(isinstance(c, LSTMState | tuple | list) for c in flat):
        raise ValueError(
            "carry: expected every entry to be an array (RNN, GRU) or every entry an "
            f"LSTMState, got {[type(c).__name__ for c in flat]}"
        )
    return _stack_leaf(flat, "")


def _stack_leaf(leaves, name):
    shapes = {tuple(jnp.shape(x)) for x in leaves}
    if len(shapes) != 1:
        field = f".{name}" if name else ""
        raise ValueError(
            f"carry: PyTorch stacks the states of all layers, so expected equal "
            f"shapes of carry[layer][direction]{field}, got {sorted(shapes)}"
        )
    return jnp.stack([jnp.asarray(x) for x in leaves])


def torch_carry(model, h_0, c_0=None):
    """rnnjax's initial carry from PyTorch's ``h_0`` (and ``c_0``).

    Args:
      model: the [`rnnjax.Stack`][rnnjax.Stack] the carry is for.
      h_0: ``(L*D, *B, H_out)`` (a torch tensor or an array), or the tuple
        ``(h_0, c_0)`` PyTorch's LSTM takes.
      c_0: ``(L*D, *B, H)``, for LSTM cells only.

    Returns:
      ``carry[layer][direction]`` for ``model.apply(..., carry=...)``. Arrays
      pass through as jnp (differentiable); torch tensors are copied.
    """
    if not isinstance(model, Stack):
        raise TypeError(
            f"model: expected an rnnjax.Stack (see rnnjax.stack), got "
            f"{type_name(model)}"
        )
    if isinstance(h_0, tuple | list):
        if c_0 is not None or len(h_0) != 2:
            raise ValueError(
                "h_0: expected an array, or the pair (h_0, c_0) with c_0=None; got a "
                f"{type(h_0).__name__} of length {len(h_0)}"
                + (" and c_0" if c_0 is not None else "")
            )
        h_0, c_0 = h_0
    is_lstm = [isinstance(c, LSTM) for c in model.cells]
    if any(is_lstm) != all(is_lstm):
        raise ValueError("model: expected all cells LSTMs or none, got a mixture")
    h_0 = _as_jnp(h_0)
    num = model.num_layers * model.num_directions
    if h_0.ndim < 2 or h_0.shape[0] != num:
        raise ValueError(
            f"h_0: expected shape ({num}, *B, H_out) (num_layers * num_directions "
            f"first), got {tuple(h_0.shape)}"
        )
    batch_shape = tuple(h_0.shape[1:-1])
    if all(is_lstm):
        if c_0 is None:
            raise TypeError(
                "c_0: the model's cells are LSTMs, so expected c_0; got None"
            )
        c_0 = _as_jnp(c_0)
    elif c_0 is not None:
        raise TypeError(
            "c_0: the model's cells are not LSTMs, so expected None; got an array"
        )
    carry = []
    for layer, cell in enumerate(model.cells):
        expected = cell.initial_carry(batch_shape)
        if isinstance(expected, LSTMState):
            _check_shape(h_0, (num, *expected.h.shape), "h_0")
            _check_shape(c_0, (num, *expected.c.shape), "c_0")
        else:
            _check_shape(h_0, (num, *expected.shape), "h_0")
        dirs = []
        for d in range(model.num_directions):
            i = layer * model.num_directions + d
            if isinstance(expected, LSTMState):
                dirs.append(expected._replace(h=h_0[i], c=c_0[i]))
            else:
                dirs.append(h_0[i])
        carry.append(tuple(dirs))
    return tuple(carry)


def _as_jnp(a):
    if hasattr(a, "detach"):
        return f32(a)
    return jnp.asarray(a, jnp.float32)


def _check_shape(a, expected, name):
    if tuple(a.shape) != tuple(expected):
        raise ValueError(f"{name}: expected shape {tuple(expected)}, got {a.shape}")

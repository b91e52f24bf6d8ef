"""Weight conversion to and from PyTorch, Keras and the ``xlstm`` package.

rnnjax cells compute ``x @ w_x + b + h @ w_h`` with ``w_x (I, G*H)``,
``w_h (K, G*H)`` and one bias ``b (G*H,)``; gate blocks are LSTM ``i, f, g, o`` and
GRU ``r, z, n`` (with the GRU's separate ``b_hn (H,)``, the recurrent bias of ``n``
that the reset gate multiplies). A [`rnnjax.Stack`][rnnjax.Stack] keeps
``params[layer][direction]`` and ``carry[layer][direction]``.

PyTorch (``rnnjax.interop.pytorch``): ``w_x = weight_ih.T``, ``w_h = weight_hh.T``,
``b = bias_ih + bias_hh`` (GRU: ``b[2H:] = bias_ih[2H:]``, ``b_hn =
bias_hh[2H:]``), LSTMP ``w_hr = weight_hr.T (H, P)``; ``h_n`` and ``c_n`` are
``(num_layers * num_directions, *B, H_out)``, index ``layer * D + direction``.

- `from_torch`: ``nn.RNN``/``nn.LSTM``/``nn.GRU`` -> ``(model, params)``.
- [`to_torch`][rnnjax.interop.to_torch]: ``(model, params)`` -> the torch module.
- [`torch_state`][rnnjax.interop.torch_state]: final carry -> ``h_n`` or ``(h_n, c_n)``.
- [`torch_carry`][rnnjax.interop.torch_carry]: ``h_0`` (and ``c_0``) -> initial carry.

Keras 3 (``rnnjax.interop.keras``): kernels are already ``x @ W``; Keras' GRU gate
order ``z, r, h`` is reordered to ``r, z, n`` and its ``(2, 3H)`` bias split into
``b`` and ``b_hn``; Keras' LSTM order ``i, f, c, o`` is rnnjax's.

- `from_keras`: a built ``LSTM``/``GRU`` (or ``Bidirectional`` of one) ->
  ``(model, params)``.

xLSTM (``rnnjax.interop.xlstm``): the ``xlstm`` package's (2.0.6) modules become
rnnjax's xLSTM models (``rnnjax.models.xlstm``) with the same weights: linear
weights transposed, head-wise weights ``(NH, Dout, Din)`` transposed per head, the
convolution's ``(E, 1, W)`` as ``(W, E)``, norms keeping the package's residual
weight (scale ``1 + weight``); the sLSTM layer's modules named ``fgate`` and
``igate`` feed the input and forget gates respectively, as in the package.

- `from_xlstm`: ``sLSTMLayer``/``mLSTMLayer``/``sLSTMBlock``/``mLSTMBlock``/
  ``xLSTMBlockStack`` -> ``(model, params)``.

Neither torch, keras nor xlstm is imported until a converter runs.
"""

from rnnjax.interop.keras import from_keras
from rnnjax.interop.pytorch import from_torch, to_torch, torch_carry, torch_state
from rnnjax.interop.xlstm import from_xlstm

__all__ = [
    "from_keras",
    "from_torch",
    "from_xlstm",
    "to_torch",
    "torch_carry",
    "torch_state",
]

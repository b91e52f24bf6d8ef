"""rnnjax: recurrent neural networks for JAX.

Pure cells over parameter pytrees (``rnnjax.lstm``, ``rnnjax.gru``, ...), unrolled
by ``rnnjax.unroll`` through fused kernels, composed into layers
(``rnnjax.Layer``, ``rnnjax.Bidirectional``) and stacks (``rnnjax.stack``).

The core is on this page: cells, ``unroll`` and the layers. Around it:
``rnnjax.models`` (attention decoder, VRNN, STORN, DRAW), ``rnnjax.hardware`` (what
the machine runs fast, the host allocator), ``rnnjax.interop``, ``rnnjax.data``,
``rnnjax.train`` and ``rnnjax.flax``.

``rnnjax.unroll`` is the function, which shadows the module of the same name.
"""

from rnnjax import hardware, interop, models
from rnnjax.cells import (
    GRU,
    LSTM,
    MGU,
    MUT1,
    MUT2,
    MUT3,
    Cell,
    CellBase,
    ClockworkRNN,
    ClockworkState,
    ConvLSTM,
    DepthGatedLSTM,
    FusedFormCell,
    GridLSTM,
    GridLSTM1D,
    Initializers,
    LSTMState,
    MinGRU,
    MinLSTM,
    SimpleRNN,
    clockwork_rnn,
    conv_lstm,
    depth_gated_lstm,
    grid_block,
    grid_lstm,
    grid_lstm_1d,
    gru,
    lstm,
    mgu,
    min_gru,
    min_lstm,
    mut1,
    mut2,
    mut3,
    simple_rnn,
)
from rnnjax.checks import check_lengths
from rnnjax.layers import Bidirectional, Layer, Stack, stack
from rnnjax.unroll import UnrollOptions, unroll

__version__ = "0.1.0"

__all__ = [
    "Bidirectional",
    "Cell",
    "CellBase",
    "ClockworkRNN",
    "ClockworkState",
    "ConvLSTM",
    "DepthGatedLSTM",
    "FusedFormCell",
    "GRU",
    "GridLSTM",
    "GridLSTM1D",
    "Initializers",
    "LSTM",
    "LSTMState",
    "Layer",
    "MGU",
    "MUT1",
    "MUT2",
    "MUT3",
    "MinGRU",
    "MinLSTM",
    "SimpleRNN",
    "Stack",
    "UnrollOptions",
    "check_lengths",
    "clockwork_rnn",
    "conv_lstm",
    "depth_gated_lstm",
    "grid_block",
    "grid_lstm",
    "grid_lstm_1d",
    "gru",
    "hardware",
    "interop",
    "lstm",
    "mgu",
    "models",
    "min_gru",
    "min_lstm",
    "mut1",
    "mut2",
    "mut3",
    "simple_rnn",
    "stack",
    "unroll",
]

"""rnnjax: recurrent neural networks for JAX.

Pure cells over parameter pytrees (``rnnjax.lstm``, ``rnnjax.gru``, ...), unrolled
by ``rnnjax.unroll`` through fused kernels, composed into layers
(``rnnjax.Layer``, ``rnnjax.Bidirectional``) and stacks (``rnnjax.stack``).

The core is on this page: cells, ``unroll`` and the layers. Around it:
``rnnjax.models`` (attention decoder, VRNN, STORN, DRAW), ``rnnjax.hardware`` (what
the machine runs fast, the host allocator), ``rnnjax.interop``, ``rnnjax.data``,
``rnnjax.train`` and ``rnnjax.flax``.

``rnnjax.unroll`` is the function, which shadows the module of the same name.

**Shape legend.** Every docstring of the package writes array shapes with these
letters, each with one meaning (a module may name other sizes in words):

- ``B`` batch: any number of leading dimensions, written ``*B``;
- ``T`` time steps; ``C`` time steps per chunk (chunked unrolls, remat, truncated
  backpropagation through time);
- ``I`` input features of one step (the input channels of a convolutional cell);
- ``H`` hidden: the size of a cell's state;
- ``G`` gate blocks: a cell's weights have ``G*H`` columns, one block per gate;
- ``Z`` the pre-activations of one step, ``project``'s output (``G*H`` for most
  cells);
- ``K`` the width of the operand of the recurrent matrix product (``H`` for most
  cells);
- ``Y`` the size of each output ``y_t`` (``H`` unless the cell projects);
- ``P`` the projection size of an LSTM with ``proj_size``;
- ``L`` layers (of a stack, of a depth-gated LSTM, blocks along a Grid LSTM's
  depth); ``D`` directions (1 or 2);
- ``E`` the event axes of one step's input (one feature axis, or ``(*S, I)``);
  ``S`` the spatial shape and ``W`` the convolution window (kernel size) of a
  convolutional cell; ``N`` the dimensions of a Grid LSTM block;
- models: ``M`` annotations, ``U`` annotation features, ``Q`` query features and
  ``A`` attention width (attention); ``X`` data features of one step, ``Xh`` and
  ``Xw`` an image's height and width; ``J`` latent features; ``F`` the width of an
  MLP; ``R`` DRAW's read vector, ``Nr`` and ``Nw`` its read and write grids;
- training: ``V`` vocabulary, ``O`` outputs of a read-out.
"""

from rnnjax import hardware, interop, models
from rnnjax.cells import (
    GRU,
    LSTM,
    MGU,
    MLSTM,
    MUT1,
    MUT2,
    MUT3,
    SLSTM,
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
    LinearRecurrenceCell,
    LSTMState,
    MinGRU,
    MinLSTM,
    MLSTMState,
    ParallelFormCell,
    SimpleRNN,
    SLSTMState,
    clockwork_rnn,
    conv_lstm,
    depth_gated_lstm,
    grid_block,
    grid_lstm,
    grid_lstm_1d,
    gru,
    headwise_linear,
    lstm,
    mgu,
    min_gru,
    min_lstm,
    mlstm,
    mut1,
    mut2,
    mut3,
    simple_rnn,
    slstm,
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
    "LinearRecurrenceCell",
    "MGU",
    "MLSTM",
    "MLSTMState",
    "MUT1",
    "MUT2",
    "MUT3",
    "MinGRU",
    "MinLSTM",
    "ParallelFormCell",
    "SLSTM",
    "SLSTMState",
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
    "headwise_linear",
    "interop",
    "lstm",
    "mgu",
    "mlstm",
    "models",
    "min_gru",
    "min_lstm",
    "mut1",
    "mut2",
    "mut3",
    "simple_rnn",
    "slstm",
    "stack",
    "unroll",
]

"""rnnjax: recurrent neural networks for JAX.

Pure cells over parameter pytrees (``rnnjax.lstm``, ``rnnjax.gru``, ...), unrolled
by ``rnnjax.unroll`` through fused kernels, stacked by ``rnnjax.stack``.

``rnnjax.draw`` and ``rnnjax.unroll`` are the functions, which shadow the modules of
the same name; reach their other names with ``from rnnjax.draw import ...``.
"""

from rnnjax import attention, generative, interop
from rnnjax.attention import (
    AttentionDecoder,
    attention_decoder,
    doubly_stochastic_penalty,
)
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
from rnnjax.draw import DRAW, Glimpse, draw
from rnnjax.generative import GenerativeRNN, storn, vrnn
from rnnjax.hardware import fast_bfloat16, matmul_dtype
from rnnjax.host import tune_host_allocator
from rnnjax.layers import Stack, stack
from rnnjax.unroll import unroll

__version__ = "0.1.0"

__all__ = [
    "AttentionDecoder",
    "Cell",
    "CellBase",
    "ClockworkRNN",
    "ClockworkState",
    "ConvLSTM",
    "DRAW",
    "DepthGatedLSTM",
    "FusedFormCell",
    "GRU",
    "Glimpse",
    "GenerativeRNN",
    "GridLSTM",
    "GridLSTM1D",
    "Initializers",
    "LSTM",
    "LSTMState",
    "MGU",
    "MUT1",
    "MUT2",
    "MUT3",
    "MinGRU",
    "MinLSTM",
    "SimpleRNN",
    "Stack",
    "attention",
    "attention_decoder",
    "check_lengths",
    "clockwork_rnn",
    "conv_lstm",
    "depth_gated_lstm",
    "doubly_stochastic_penalty",
    "draw",
    "fast_bfloat16",
    "generative",
    "grid_block",
    "grid_lstm",
    "grid_lstm_1d",
    "gru",
    "interop",
    "lstm",
    "matmul_dtype",
    "mgu",
    "min_gru",
    "min_lstm",
    "mut1",
    "mut2",
    "mut3",
    "simple_rnn",
    "stack",
    "storn",
    "tune_host_allocator",
    "unroll",
    "vrnn",
]

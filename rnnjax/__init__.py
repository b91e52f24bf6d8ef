"""rnnjax: recurrent neural networks for JAX.

Pure cells over parameter pytrees (``rnnjax.lstm``, ``rnnjax.gru``, ...), unrolled
by ``rnnjax.unroll`` through fused kernels, stacked by ``rnnjax.stack``.
"""

from rnnjax import attention, interop
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
    Initializers,
    LSTMState,
    MinGRU,
    MinLSTM,
    SimpleRNN,
    clockwork_rnn,
    conv_lstm,
    depth_gated_lstm,
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
    "DepthGatedLSTM",
    "FusedFormCell",
    "GRU",
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
    "gru",
    "interop",
    "lstm",
    "mgu",
    "min_gru",
    "min_lstm",
    "mut1",
    "mut2",
    "mut3",
    "simple_rnn",
    "stack",
    "unroll",
]

"""Pure cell definitions, one family per file."""

from rnnjax.cells.base import (
    Cell,
    CellBase,
    FusedFormCell,
    Initializers,
    LinearRecurrenceCell,
)
from rnnjax.cells.clockwork import ClockworkRNN, ClockworkState, clockwork_rnn
from rnnjax.cells.conv_lstm import ConvLSTM, conv_lstm
from rnnjax.cells.depth_gated import DepthGatedLSTM, depth_gated_lstm
from rnnjax.cells.grid_lstm import (
    GridLSTM,
    GridLSTM1D,
    grid_block,
    grid_lstm,
    grid_lstm_1d,
)
from rnnjax.cells.gru import GRU, MGU, gru, mgu
from rnnjax.cells.lstm import LSTM, LSTMState, lstm
from rnnjax.cells.minimal import MinGRU, MinLSTM, min_gru, min_lstm
from rnnjax.cells.mlstm import MLSTM, MLSTMState, ParallelFormCell, mlstm
from rnnjax.cells.mut import MUT1, MUT2, MUT3, mut1, mut2, mut3
from rnnjax.cells.simple import SimpleRNN, simple_rnn
from rnnjax.cells.slstm import SLSTM, SLSTMState, headwise_linear, slstm

__all__ = [
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
    "clockwork_rnn",
    "conv_lstm",
    "depth_gated_lstm",
    "grid_block",
    "grid_lstm",
    "grid_lstm_1d",
    "gru",
    "headwise_linear",
    "lstm",
    "mgu",
    "mlstm",
    "min_gru",
    "min_lstm",
    "mut1",
    "mut2",
    "mut3",
    "simple_rnn",
    "slstm",
]

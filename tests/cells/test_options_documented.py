"""Each cell option is documented in one place: the ``Attributes:`` of its class
(or of a base class it inherits the option from; MUT1-3's one option in their module
docstring). The factories document only what they add, never an option again."""

import dataclasses
import inspect
import re
import sys

import pytest

import rnnjax
from rnnjax.cells import CellBase

# (class, factory, factory arguments that document a conversion of an option)
CELLS = {
    "LSTM": (rnnjax.LSTM, rnnjax.lstm, ()),
    "GRU": (rnnjax.GRU, rnnjax.gru, ()),
    "MGU": (rnnjax.MGU, rnnjax.mgu, ()),
    "SimpleRNN": (rnnjax.SimpleRNN, rnnjax.simple_rnn, ()),
    "MinGRU": (rnnjax.MinGRU, rnnjax.min_gru, ()),
    "MinLSTM": (rnnjax.MinLSTM, rnnjax.min_lstm, ()),
    "MLSTM": (rnnjax.MLSTM, rnnjax.mlstm, ()),
    "MUT1": (rnnjax.MUT1, rnnjax.mut1, ()),
    "MUT2": (rnnjax.MUT2, rnnjax.mut2, ()),
    "MUT3": (rnnjax.MUT3, rnnjax.mut3, ()),
    "ConvLSTM": (rnnjax.ConvLSTM, rnnjax.conv_lstm, ("kernel_size",)),
    "DepthGatedLSTM": (rnnjax.DepthGatedLSTM, rnnjax.depth_gated_lstm, ()),
    "ClockworkRNN": (rnnjax.ClockworkRNN, rnnjax.clockwork_rnn, ()),
    "GridLSTM": (rnnjax.GridLSTM, rnnjax.grid_lstm, ()),
    "GridLSTM1D": (rnnjax.GridLSTM1D, rnnjax.grid_lstm_1d, ()),
    "SLSTM": (rnnjax.SLSTM, rnnjax.slstm, ()),
}
COMMON = {f.name for f in dataclasses.fields(CellBase)}


def _section(doc: str | None, title: str) -> set[str]:
    """The names documented in a Google-style section (``name: text`` lines)."""
    lines = inspect.cleandoc(doc or "").splitlines()
    names, inside = set(), False
    for line in lines:
        if line.strip() == f"{title}:":
            inside = True
        elif inside and line and not line.startswith(" "):
            inside = False
        elif inside and (m := re.match(r"^  (\w+(?:, \w+)*):", line)):
            names |= set(m.group(1).split(", "))
    return names


@pytest.mark.parametrize("name", sorted(CELLS))
def test_every_option_documented_once(name):
    cls, factory, conversions = CELLS[name]
    options = {f.name for f in dataclasses.fields(cls)}
    if issubclass(cls, CellBase):
        options -= COMMON  # documented once, in CellBase
    documented = set().union(*(_section(c.__doc__, "Attributes") for c in cls.__mro__))
    module_doc = sys.modules[cls.__module__].__doc__
    missing = {
        o
        for o in options - documented
        if f"``{o}``" not in module_doc.split("Options")[-1]
    }
    assert not missing, f"{name}: options without a documentation entry: {missing}"
    repeated = (_section(factory.__doc__, "Args") & options) - set(conversions)
    assert not repeated, f"{factory.__name__} documents {repeated} again"
    assert cls.__name__ in (factory.__doc__ or "") or "module docstring" in (
        factory.__doc__ or ""
    ), f"{factory.__name__} does not say where its options are documented"

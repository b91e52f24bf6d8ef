"""``python -m rnnjax.demo``: it tours every cell constructor and every model, and
its table's columns line up."""

import re

import pytest

import rnnjax
from rnnjax import demo

FACTORIES = [
    name
    for name in rnnjax.cells.__all__
    if name[0].islower() and name not in ("grid_block",)
]


@pytest.mark.slow
def test_demo_tours_every_cell_and_model_in_aligned_columns(capsys):
    demo.main(["--batch", "2", "--time", "4", "--input", "3", "--hidden", "4"])
    lines = capsys.readouterr().out.splitlines()
    header, rule, rows = lines[1], lines[2], lines[3:]
    names = " ".join(row.split("  ")[0] for row in rows)
    for factory in FACTORIES:
        assert factory in names, f"the demo leaves out rnnjax.{factory}"
    for model in ("attention_decoder", "vrnn", "storn", "draw"):
        assert model in names, f"the demo leaves out rnnjax.models.{model}"
    assert set(rule) == {"-"} and len(rule) >= len(header)
    # Right-aligned numbers end where their headers end.
    for column in ("params", "fwd ms", "f+b ms"):
        end = header.index(column) + len(column)
        for row in rows:
            assert re.fullmatch(r"[0-9.]+", row[end - 4 : end].strip()), (column, row)

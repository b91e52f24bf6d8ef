"""``python -m rnnjax.demo``: it tours every cell constructor and every model, runs
them, and its table's columns line up."""

import argparse

import jax
import jax.numpy as jnp

import rnnjax
from rnnjax import demo

# The cell constructors (grid_block and headwise_linear are building blocks).
FACTORIES = [
    name
    for name in rnnjax.cells.__all__
    if name[0].islower() and name not in ("grid_block", "headwise_linear")
]
TINY = argparse.Namespace(batch=2, time=4, input=3, hidden=4, repeats=1)


def test_demo_tours_every_cell_and_model():
    names = [name for name, _ in demo.demo_cells(4)] + ["conv_lstm", "grid_lstm_1d"]
    names += [name for name, *_ in demo.demo_models(TINY)]
    text = " ".join(names)
    for factory in FACTORIES:
        assert factory in text, f"the demo leaves out rnnjax.{factory}"
    for model in ("attention_decoder", "vrnn", "storn", "draw"):
        assert model in text, f"the demo leaves out rnnjax.models.{model}"


def test_the_models_trace_forward_and_backward():
    """Every model row of the demo runs (traced by shapes, forward and gradient;
    the models' own tests check their values)."""
    models = [demo._grid_1d(TINY), *demo.demo_models(TINY)]
    assert [m[0].split()[0].split("(")[0] for m in models] == [
        "grid_lstm_1d",
        "attention_decoder",
        "vrnn",
        "storn",
        "draw",
    ]
    for name, params, run, inputs in models:
        out = jax.eval_shape(run, params, inputs)
        assert jax.tree.leaves(out), name

        def loss(p, x, run=run):
            return sum(jnp.sum(leaf) for leaf in jax.tree.leaves(run(p, x)))

        grads = jax.eval_shape(jax.grad(loss), params, inputs)
        assert jax.tree.structure(grads) == jax.tree.structure(params), name


def test_table_columns_line_up(capsys):
    rows = [
        ("lstm", "fused", 416, "(2, 8, 8)", "(2, 8),(2, 8)", 0.51, 12.25),
        (
            "depth_gated_lstm(2 layers)",
            "scan",
            1096,
            "(2, 8, 8)",
            "(2, 8)," * 4,
            2.0,
            2.6,
        ),
    ]
    demo.print_table(rows)
    header, rule, *lines = capsys.readouterr().out.splitlines()
    assert set(rule) == {"-"} and len(rule) >= len(header)
    for column in ("params", "fwd ms", "f+b ms"):  # numbers end under their header
        end = header.index(column) + len(column)
        assert all(
            line[end - 1].isdigit() and line[end : end + 1] in ("", " ")
            for line in lines
        )
    for column in ("impl", "outputs", "carry"):  # text starts under its header
        start = header.index(column)
        assert all(line[start - 1] == " " and line[start] != " " for line in lines)

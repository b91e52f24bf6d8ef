"""The model of ``rnnjax train``: an `rnnjax.stack` of the configured cell
between an input encoding and a linear read-out.

``model.cell`` names a cell constructor (`CELLS`), optionally with keyword
options in call syntax, e.g. ``"lstm(peephole=True, forget_bias=0.0)"`` (literal
values only). Shapes: ``B`` batch, ``T`` time, ``I`` input features, ``H`` hidden,
``D`` directions, ``O`` outputs.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect

import jax

import rnnjax
from rnnjax.cells import base

__all__ = ["CELLS", "Model", "cell_spec", "make_model"]

#: The cell constructors ``model.cell`` may name.
CELLS = {
    "lstm": rnnjax.lstm,
    "gru": rnnjax.gru,
    "simple_rnn": rnnjax.simple_rnn,
    "mgu": rnnjax.mgu,
    "min_gru": rnnjax.min_gru,
    "min_lstm": rnnjax.min_lstm,
    "mlstm": rnnjax.mlstm,
    "mut3": rnnjax.mut3,
}


def cell_spec(spec) -> tuple[str, dict]:
    """``(name, options)`` of a ``model.cell`` string such as ``"lstm"`` or
    ``"lstm(peephole=True, forget_bias=0.0)"`` (keyword options, literal values);
    ``ValueError`` naming ``config.model.cell`` otherwise."""
    where = f"config.model.cell: expected one of {list(CELLS)}"
    try:
        call = ast.parse(str(spec).strip(), mode="eval").body
        if isinstance(call, ast.Name):
            name, options = call.id, {}
        elif (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name)
            and not call.args
            and all(k.arg for k in call.keywords)
        ):
            name = call.func.id
            options = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        else:
            raise ValueError
    except (SyntaxError, ValueError):
        raise ValueError(
            f"{where}, optionally with keyword options as in "
            f"'lstm(peephole=True)', got {spec!r}"
        ) from None
    if name not in CELLS:
        raise ValueError(f"{where}, got {spec!r}")
    known = inspect.signature(CELLS[name]).parameters
    for key in options:
        if key not in known or key == "hidden_size":
            raise ValueError(
                f"config.model.cell: {name}() has no option {key!r} (in {spec!r})"
            )
    return name, options


@dataclasses.dataclass(frozen=True)
class Model:
    """An `rnnjax.stack` between an input encoding and a linear read-out.

    Params: ``{"rnn": stack params, "out": {"w": (D*H, O), "b": (O,)}}``. Inputs
    are ``(B, T, I)`` floats, or ``(B, T)`` int ids when ``one_hot`` (then ``I`` is
    the vocabulary size); outputs are ``(B, T, O)``.
    """

    stack: rnnjax.Stack
    input_size: int
    output_size: int
    one_hot: bool
    impl: str

    def init(self, key):
        """The parameters, drawn from ``key``."""
        k_rnn, k_out = jax.random.split(key)
        return {
            "rnn": self.stack.init(k_rnn, self.input_size),
            "out": base.dense_params(k_out, self.stack.output_size, self.output_size),
        }

    def apply(self, params, inputs, *, seq_lengths=None, carry=None, key=None):
        """``(carry, outputs)``; dropout is on when ``key`` is given."""
        xs = jax.nn.one_hot(inputs, self.input_size) if self.one_hot else inputs
        drop = key is not None and self.stack.has_dropout
        carry, ys = self.stack.apply(
            params["rnn"],
            xs,
            carry=carry,
            seq_lengths=seq_lengths,
            key=key if drop else None,
            training=drop,
            options=rnnjax.UnrollOptions(impl=self.impl),
        )
        return carry, base.dense(params["out"], ys)


def make_model(model_config, input_size: int, output_size: int, one_hot: bool):
    """The `Model` of ``config.model`` (``cell``, ``hidden_size``,
    ``num_layers``, ``dropout``, ``impl``) for the task's sizes."""
    m = model_config
    name, options = cell_spec(m.cell)
    cell = CELLS[name](m.hidden_size, **options)
    stack = rnnjax.stack(cell, m.num_layers, dropout=m.dropout)
    return Model(stack, input_size, output_size, one_hot, impl=m.impl)

"""The model of rnnjax train: the cell from ``model.cell``, the read-out."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax.train import experiment, model
from tests.train._configs import tiny


def test_cell_options_reach_the_cell():
    config = tiny(
        "adding_lstm", extra=[("model.cell", "lstm(peephole=True, forget_bias=0.0)")]
    )
    assert experiment.cell_spec(config.model.cell) == (
        "lstm",
        {"peephole": True, "forget_bias": 0.0},
    )
    cell = experiment.build(config).model.stack.cells[0]
    assert cell.peephole and cell.forget_bias == 0.0
    assert experiment.cell_spec(" gru ") == ("gru", {})


def test_model_is_the_stack_then_the_read_out():
    config = tiny("adding_lstm", extra=[("model.num_layers", "2")])
    m = model.make_model(config.model, 3, 5, False)
    params = m.init(jax.random.key(0))
    assert params["out"]["w"].shape == (16, 5) and params["out"]["b"].shape == (5,)
    xs = jax.random.normal(jax.random.key(1), (2, 7, 3))
    carry, out = m.apply(params, xs)
    _, ys = rnnjax.stack(rnnjax.lstm(16), 2).apply(params["rnn"], xs)
    want = np.asarray(ys) @ np.asarray(params["out"]["w"])
    np.testing.assert_allclose(out, want + np.asarray(params["out"]["b"]), rtol=1e-5)
    assert out.shape == (2, 7, 5) and len(carry) == 2


def test_one_hot_inputs():
    config = tiny("adding_lstm")
    m = model.make_model(config.model, 6, 6, True)
    params = m.init(jax.random.key(0))
    ids = jnp.array([[1, 2, 3]])
    _, by_id = m.apply(params, ids)
    _, by_vector = model.Model(m.stack, 6, 6, False, "auto").apply(
        params, jax.nn.one_hot(ids, 6)
    )
    np.testing.assert_array_equal(by_id, by_vector)


@pytest.mark.parametrize("spec", ["lstm(", "lstm()()", "lambda: 1", "nope"])
def test_cell_spec_errors_name_the_key(spec):
    with pytest.raises(ValueError, match=r"config\.model\.cell: expected one of"):
        model.cell_spec(spec)

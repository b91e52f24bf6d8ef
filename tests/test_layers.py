"""Stacks: composition, both directions, carries, dropout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax

# Their time is compiling small programs: XLA's cheaper passes (conftest).
pytestmark = pytest.mark.usefixtures("fast_compile")

INPUT = 3


def data(batch=(2,), steps=5, seed=1):
    return jax.random.normal(jax.random.key(seed), (*batch, steps, INPUT))


def test_stack_equals_manual_composition():
    model = rnnjax.stack([rnnjax.lstm(4), rnnjax.gru(5)], bidirectional=True)
    params = model.init(jax.random.key(0), INPUT)
    xs, lengths = data(), jnp.array([5, 2])
    carry, ys = model.apply(params, xs, seq_lengths=lengths)

    inputs, finals = xs, []
    for layer, cell in enumerate(model.cells):
        fwd = rnnjax.unroll(cell, params[layer][0], inputs, seq_lengths=lengths)
        bwd = rnnjax.unroll(
            cell, params[layer][1], inputs, seq_lengths=lengths, reverse=True
        )
        finals.append((fwd[0], bwd[0]))
        inputs = jnp.concatenate([fwd[1], bwd[1]], axis=-1)
    np.testing.assert_allclose(ys, inputs, rtol=1e-6)
    jax.tree.map(np.testing.assert_array_equal, carry, tuple(finals))
    assert ys.shape == (2, 5, 2 * 5) and model.output_size == 10


def test_shapes_params_and_initial_carry_per_layer_and_direction():
    model = rnnjax.stack(rnnjax.lstm(4, proj_size=2), num_layers=3, bidirectional=True)
    params = model.init(jax.random.key(0), INPUT)
    assert len(params) == 3 and all(len(p) == 2 for p in params)
    assert params[0][0]["w_x"].shape == (INPUT, 16)
    assert params[1][1]["w_x"].shape == (4, 16)  # 2 directions x proj 2
    carry0 = jax.tree.map(lambda c: c + 0.3, model.initial_carry((2,)))
    carry, ys = model.apply(params, data(), carry=carry0)
    assert ys.shape == (2, 5, 4)
    _, ys_zero = model.apply(params, data())
    assert not np.allclose(ys, ys_zero)
    assert jax.tree.structure(carry) == jax.tree.structure(carry0)


def test_time_major_stack():
    model = rnnjax.stack(rnnjax.gru(4), num_layers=2, time_major=True)
    params = model.init(jax.random.key(0), INPUT)
    xs = data()
    _, ys_t = model.apply(params, jnp.swapaxes(xs, 0, 1))
    _, ys_b = model.apply(params, xs, time_major=False)
    np.testing.assert_allclose(jnp.swapaxes(ys_t, 0, 1), ys_b, rtol=1e-6)


def test_dropout_off_at_evaluation():
    plain = rnnjax.stack(rnnjax.lstm(4), num_layers=2)
    dropped = rnnjax.stack(
        rnnjax.lstm(4),
        num_layers=2,
        dropout=0.5,
        input_dropout=0.3,
        recurrent_dropout=0.3,
    )
    params = plain.init(jax.random.key(0), INPUT)
    _, ys = plain.apply(params, data())
    _, ys_eval = dropped.apply(params, data())
    _, ys_eval_key = dropped.apply(params, data(), key=jax.random.key(3))
    np.testing.assert_array_equal(ys, ys_eval)
    np.testing.assert_array_equal(ys, ys_eval_key)


@pytest.mark.parametrize(
    "rates", [dict(dropout=0.5), dict(input_dropout=0.5), dict(recurrent_dropout=0.5)]
)
def test_dropout_is_keyed_and_reproducible(rates):
    model = rnnjax.stack(rnnjax.gru(4), num_layers=2, **rates)
    params = model.init(jax.random.key(0), INPUT)
    run = lambda k: model.apply(params, data(), key=jax.random.key(k), training=True)[1]
    _, ys_eval = model.apply(params, data())
    np.testing.assert_array_equal(run(1), run(1))
    assert not np.allclose(run(1), run(2))
    assert not np.allclose(run(1), ys_eval)


def test_variational_input_mask_is_one_per_sequence():
    # With no recurrence (w_h = 0) and the same input at every step, a per-sequence
    # input mask gives the same output at every step.
    cell = rnnjax.simple_rnn(6)
    model = rnnjax.stack(cell, input_dropout=0.5)
    params = model.init(jax.random.key(0), INPUT)
    params = ((dict(params[0][0], w_h=jnp.zeros((6, 6))),),)
    xs = jnp.ones((3, 7, INPUT))
    _, ys = model.apply(params, xs, key=jax.random.key(5), training=True)
    np.testing.assert_allclose(ys, jnp.broadcast_to(ys[:, :1], ys.shape), rtol=1e-6)
    assert not np.allclose(ys[0], ys[1]) or not np.allclose(ys[1], ys[2])


def test_variational_recurrent_mask_equals_unroll_with_rec_mask():
    cell = rnnjax.lstm(4)
    model = rnnjax.stack(cell, recurrent_dropout=0.4)
    params = model.init(jax.random.key(0), INPUT)
    key = jax.random.key(9)
    _, ys = model.apply(params, data(), key=key, training=True)
    # Rebuild the mask the way the stack draws it, then compare with unroll.
    layer_key = jax.random.split(jax.random.split(key, 1)[0], 3)[0]
    _, k_rec = jax.random.split(jax.random.fold_in(layer_key, 0))
    keep = jax.random.bernoulli(k_rec, 0.6, (2, 4)).astype(jnp.float32) / 0.6
    _, ref = rnnjax.unroll(cell, params[0][0], data(), rec_mask=keep)
    np.testing.assert_allclose(ys, ref, rtol=1e-6)


def test_gradients_flow_through_every_layer_and_direction():
    model = rnnjax.stack(
        [rnnjax.lstm(4), rnnjax.mgu(4)], bidirectional=True, dropout=0.2
    )
    params = model.init(jax.random.key(0), INPUT)
    loss = lambda p: jnp.sum(
        model.apply(p, data(), key=jax.random.key(1), training=True)[1] ** 2
    )
    grads = jax.jit(jax.grad(loss))(params)
    for leaf in jax.tree.leaves(grads):
        assert np.all(np.isfinite(leaf)) and np.any(leaf != 0)


# ------------------------------------------------------------- composition


def test_layer_equals_unroll_both_ways_and_layouts():
    cell = rnnjax.gru(4)
    layer = rnnjax.Layer(cell)
    params = layer.init(jax.random.key(0), INPUT)
    xs, lengths = data(), jnp.array([5, 3])
    carry0 = jax.tree.map(lambda c: c + 0.2, layer.initial_carry((2,)))
    for reverse in (False, True):
        got = layer.apply(
            params, xs, carry=carry0, seq_lengths=lengths, reverse=reverse
        )
        want = rnnjax.unroll(
            cell, params, xs, carry=carry0, seq_lengths=lengths, reverse=reverse
        )
        jax.tree.map(np.testing.assert_array_equal, got, want)
    backwards = rnnjax.Layer(cell, reverse=True, time_major=True)
    _, ys = backwards.apply(params, jnp.swapaxes(xs, 0, 1), seq_lengths=lengths)
    want = rnnjax.unroll(cell, params, xs, seq_lengths=lengths, reverse=True)[1]
    np.testing.assert_array_equal(jnp.swapaxes(ys, 0, 1), want)
    assert layer.output_size == 4 and not layer.has_dropout


def test_layer_variational_dropout_equals_unroll_with_masks():
    cell = rnnjax.lstm(4)
    layer = rnnjax.Layer(cell, input_dropout=0.3, recurrent_dropout=0.4)
    params = layer.init(jax.random.key(0), INPUT)
    key, xs = jax.random.key(4), data()
    _, ys = layer.apply(params, xs, key=key, training=True)
    k_in, k_rec = jax.random.split(key)
    x_mask = jax.random.bernoulli(k_in, 0.7, (2, INPUT)).astype(jnp.float32) / 0.7
    h_mask = jax.random.bernoulli(k_rec, 0.6, (2, 4)).astype(jnp.float32) / 0.6
    _, want = rnnjax.unroll(cell, params, xs * x_mask[:, None], rec_mask=h_mask)
    np.testing.assert_allclose(ys, want, rtol=1e-6)
    # time-major: the same masks
    _, ys_t = layer.apply(
        params, jnp.swapaxes(xs, 0, 1), key=key, training=True, time_major=True
    )
    np.testing.assert_allclose(jnp.swapaxes(ys_t, 0, 1), want, rtol=1e-6)
    np.testing.assert_array_equal(
        layer.apply(params, xs)[1], rnnjax.unroll(cell, params, xs)[1]
    )
    with pytest.raises(TypeError, match="key: training=True with dropout needs"):
        layer.apply(params, xs, training=True)
    with pytest.raises(TypeError, match="key: this layer has no dropout"):
        rnnjax.Layer(cell).apply(params, xs, key=key)


def test_bidirectional_with_a_custom_merge():
    fwd, bwd = rnnjax.lstm(4), rnnjax.gru(4)
    both = rnnjax.Bidirectional(rnnjax.Layer(fwd), rnnjax.Layer(bwd), merge=jnp.add)
    params = both.init(jax.random.key(0), INPUT)
    xs, lengths = data(), jnp.array([5, 2])
    (c_fwd, c_bwd), ys = both.apply(params, xs, seq_lengths=lengths)
    want_fwd = rnnjax.unroll(fwd, params[0], xs, seq_lengths=lengths)
    want_bwd = rnnjax.unroll(bwd, params[1], xs, seq_lengths=lengths, reverse=True)
    np.testing.assert_allclose(ys, want_fwd[1] + want_bwd[1], rtol=1e-6)
    jax.tree.map(
        np.testing.assert_array_equal, (c_fwd, c_bwd), (want_fwd[0], want_bwd[0])
    )
    assert both.output_size == 4 and ys.shape == (2, 5, 4)
    assert rnnjax.Bidirectional(rnnjax.Layer(fwd), rnnjax.Layer(bwd)).output_size == 8
    assert jax.tree.structure(both.initial_carry((2,))) == jax.tree.structure(
        (c_fwd, c_bwd)
    )
    with pytest.raises(ValueError, match=r"carry: expected a \(forward, backward\)"):
        both.apply(params, xs, carry=c_fwd)
    with pytest.raises(TypeError, match=r"backward: expected an rnnjax\.Layer"):
        rnnjax.Bidirectional(rnnjax.Layer(fwd), bwd)


def test_stack_is_composed_of_layers_and_equals_the_old_stack():
    cells = [rnnjax.lstm(4), rnnjax.gru(5)]
    model = rnnjax.stack(cells, bidirectional=True, dropout=0.3, input_dropout=0.2)
    layers = tuple(
        rnnjax.Bidirectional(
            rnnjax.Layer(c, input_dropout=0.2),
            rnnjax.Layer(c, reverse=True, input_dropout=0.2),
        )
        for c in cells
    )
    assert model == rnnjax.Stack(layers, dropout=0.3)
    assert model.cells == tuple(cells) and model.bidirectional
    assert (model.num_directions, model.input_dropout) == (2, 0.2)
    one_way = rnnjax.stack(rnnjax.lstm(4), num_layers=2, recurrent_dropout=0.1)
    assert one_way.layers == (rnnjax.Layer(rnnjax.lstm(4), recurrent_dropout=0.1),) * 2
    assert one_way.num_directions == 1 and not one_way.bidirectional


def test_mixed_stack_equals_its_layers_run_in_turn():
    # A summed bidirectional layer under a one-way layer (as GNMT's encoder).
    both = rnnjax.Bidirectional(
        rnnjax.Layer(rnnjax.lstm(4)), rnnjax.Layer(rnnjax.lstm(4)), merge=jnp.add
    )
    top = rnnjax.Layer(rnnjax.gru(3), recurrent_dropout=0.5)
    model = rnnjax.Stack([both, top], dropout=0.5)
    params = model.init(jax.random.key(0), INPUT)
    assert len(params) == 2 and len(params[0]) == 2 and len(params[1]) == 1
    assert params[1][0]["w_x"].shape == (4, 9)  # summed: 4 features, not 8
    assert model.output_size == 3 and model.recurrent_dropout == 0.5
    xs, lengths, key = data(), jnp.array([5, 3]), jax.random.key(2)
    carry0 = jax.tree.map(lambda c: c + 0.1, model.initial_carry((2,)))
    carry, ys = model.apply(
        params, xs, carry=carry0, seq_lengths=lengths, key=key, training=True
    )
    # By hand, with the keys Stack.apply documents.
    keys = [jax.random.split(k, 3) for k in jax.random.split(key, 2)]
    c0, h = both.apply(params[0], xs, carry=carry0[0], seq_lengths=lengths)
    mask = jax.random.bernoulli(keys[0][2], 0.5, (5, 2, 4))  # drawn time-major
    h = h * jnp.swapaxes(mask, 0, 1) / 0.5
    c1, want = top.apply(
        params[1][0],
        h,
        carry=carry0[1][0],
        seq_lengths=lengths,
        key=jax.random.fold_in(keys[1][0], 0),
        training=True,
    )
    np.testing.assert_allclose(ys, want, rtol=1e-6)
    jax.tree.map(np.testing.assert_array_equal, carry, (c0, (c1,)))
    with pytest.raises(ValueError, match="num_directions: this stack mixes"):
        _ = model.num_directions
    with pytest.raises(ValueError, match=r"each a tuple of \[2, 1\] direction"):
        model.apply(params, xs, carry=(carry0[0], carry0[1][0]))


def test_stack_takes_the_unroll_options_as_one_value():
    model = rnnjax.stack(rnnjax.lstm(4), num_layers=2, bidirectional=True)
    params = model.init(jax.random.key(0), INPUT)
    xs = data()
    options = rnnjax.UnrollOptions(impl="scan", remat="step")
    got = model.apply(params, xs, options=options)
    scan = rnnjax.UnrollOptions(impl="scan")  # remat changes memory, not values
    jax.tree.map(
        np.testing.assert_array_equal, got, model.apply(params, xs, options=scan)
    )
    with pytest.raises(TypeError, match="unexpected keyword argument 'impl'"):
        model.apply(params, xs, options=options, impl="scan")
    with pytest.raises(TypeError, match=r"options: expected an rnnjax\.UnrollOptions"):
        model.apply(params, xs, options={"impl": "scan"})


def test_stack_rejects_what_is_not_a_layer():
    with pytest.raises(TypeError, match=r"layers\[1\]: expected an rnnjax\.Layer"):
        rnnjax.Stack((rnnjax.Layer(rnnjax.gru(4)), rnnjax.gru(4)))
    with pytest.raises(ValueError, match="layers: expected at least one layer"):
        rnnjax.Stack(())

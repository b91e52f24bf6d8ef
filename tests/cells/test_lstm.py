"""The LSTM and its variants against a float64 NumPy implementation of the equations.

The reference follows the equations of Hochreiter & Schmidhuber 1997 with the
forget gate (Gers et al. 2000), peepholes (Gers & Schmidhuber 2000), Greff et al.
2015's variants (NIG, NFG, NOG, NIAF, NOAF, CIFG, FGR), the projection of Sak et
al. 2014 (LSTMP) and the layer normalisation of Ba et al. 2016, as restated in
``rnnjax/cells/lstm.py``:

- columns of ``w_x``, ``w_h`` and ``b`` are gate blocks in order ``i, f, g, o``, an
  absent gate taking no columns (CIFG has no ``f`` block: ``f = 1 - i``);
- FGR feeds the previous sigmoid gates (in column order, ``f`` excluded with CIFG)
  through ``w_gg (S*H, S*H)`` into the sigmoid gates' pre-activations only, ``w_gg``'s
  column blocks being the sigmoid gates in the same order; the block input ``g`` gets
  no FGR term;
- layer norm: ``a = LN(x W_x) + LN(h W_h + gates W_gg) + b`` (the whole recurrent
  term normalised together), ``h = o * act(LN(c))`` with ``c`` itself not normalised.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from tests.cells import _reference as ref

# Their time is compiling small programs: XLA's cheaper passes (conftest).
pytestmark = pytest.mark.usefixtures("fast_compile")

I, H, P = 4, 5, 3

# (option name -> rnnjax.lstm keyword arguments). Greff et al.'s names where they
# exist.
OPTIONS = {
    "vanilla": {},
    "peephole": dict(peephole=True),
    "cifg": dict(coupled=True),
    "cifg_peephole": dict(coupled=True, peephole=True),
    "nig": dict(input_gate=False),
    "nfg": dict(forget_gate=False),
    "nog": dict(output_gate=False),
    "nig_peephole": dict(input_gate=False, peephole=True),
    "nfg_peephole": dict(forget_gate=False, peephole=True),
    "nog_peephole": dict(output_gate=False, peephole=True),
    "no_gates": dict(input_gate=False, forget_gate=False, output_gate=False),
    "niaf": dict(input_activation=None),
    "noaf": dict(output_activation=None),
    "relu_in_sigmoid_out": dict(input_activation="relu", output_activation="sigmoid"),
    "callable_activations": dict(input_activation=jnp.sin, output_activation=jnp.sin),
    "fgr": dict(full_gate_recurrence=True),
    "fgr_cifg": dict(full_gate_recurrence=True, coupled=True),
    "fgr_peephole": dict(full_gate_recurrence=True, peephole=True),
    "fgr_nig": dict(full_gate_recurrence=True, input_gate=False),
    "fgr_nfg": dict(full_gate_recurrence=True, forget_gate=False),
    "fgr_nog": dict(full_gate_recurrence=True, output_gate=False),
    "proj": dict(proj_size=P),
    "proj_peephole_fgr": dict(proj_size=P, peephole=True, full_gate_recurrence=True),
    "layer_norm": dict(layer_norm=True),
    "layer_norm_noaf": dict(layer_norm=True, output_activation=None),
    "layer_norm_proj": dict(layer_norm=True, proj_size=P),
    "peephole_layer_norm_fgr": dict(
        peephole=True, layer_norm=True, full_gate_recurrence=True
    ),
    "everything": dict(
        peephole=True,
        coupled=True,
        layer_norm=True,
        full_gate_recurrence=True,
        proj_size=P,
    ),
}


# ------------------------------------------------------------------- the reference


def layout(opts):
    """(column blocks, sigmoid gates) from the documented order ``i, f, g, o``."""
    present = {
        "i": opts.get("input_gate", True),
        "f": opts.get("forget_gate", True) and not opts.get("coupled", False),
        "g": True,
        "o": opts.get("output_gate", True),
    }
    columns = tuple(n for n in "ifgo" if present[n])
    return columns, tuple(n for n in columns if n != "g")


def lstm_reference(opts):
    columns, sigmoid_gates = layout(opts)
    coupled = opts.get("coupled", False)
    peephole = opts.get("peephole", False)
    fgr = opts.get("full_gate_recurrence", False)
    ln = opts.get("layer_norm", False)
    proj = opts.get("proj_size") is not None
    act_in = ref.ACTIVATIONS[opts.get("input_activation", "tanh")]
    act_out = ref.ACTIVATIONS[opts.get("output_activation", "tanh")]

    def step(p, carry, x):
        c_prev, h_prev, gates_prev = carry
        from_x = x @ p["w_x"]
        from_h = h_prev @ p["w_h"]
        if fgr:
            fb = ref.split(gates_prev @ p["w_gg"], sigmoid_gates)
            zero = np.zeros_like(c_prev)
            from_h = from_h + np.concatenate([fb.get(n, zero) for n in columns], -1)
        if ln:
            a = (
                ref.layer_norm(from_x, p["ln_x_scale"])
                + ref.layer_norm(from_h, p["ln_h_scale"])
                + p["b"]
            )
        else:
            a = from_x + from_h + p["b"]
        a = ref.split(a, columns)

        def gate(name, cell):
            pre = a[name]
            if peephole:
                pre = pre + p[f"peephole_{name}"] * cell
            return ref.sigmoid(pre)

        i = gate("i", c_prev) if "i" in columns else 1.0
        if coupled:
            f = 1.0 - i
        else:
            f = gate("f", c_prev) if "f" in columns else 1.0
        g = act_in(a["g"])
        c = f * c_prev + i * g
        o = gate("o", c) if "o" in columns else 1.0
        c_hat = ref.layer_norm(c, p["ln_c_scale"], p["ln_c_bias"]) if ln else c
        h = o * act_out(c_hat)
        if proj:
            h = h @ p["w_hr"]
        gates = None
        if fgr:
            values = {"i": i, "f": f, "o": o}
            gates = np.concatenate([values[n] for n in sigmoid_gates], -1)
        return (c, h, gates), h

    return step


def as_tuple(carry):
    return tuple(carry)  # LSTMState(c, h, gates) -> (c, h, gates)


# ------------------------------------------------------------------------- maths


@pytest.mark.parametrize("batch_shape", ref.BATCH_SHAPES, ids=ref.BATCH_IDS)
@pytest.mark.parametrize("option", list(OPTIONS))
def test_matches_reference(option, batch_shape):
    opts = OPTIONS[option]
    cell = rnnjax.lstm(H, **opts)
    ref.check_steps(cell, I, batch_shape, lstm_reference(opts), as_tuple)


@pytest.mark.parametrize("option", ["vanilla", "proj", "layer_norm", "everything"])
def test_bfloat16_compute(option):
    """bfloat16 matrix products, float32 params, cell state and outputs."""
    opts = OPTIONS[option]
    cell = rnnjax.lstm(H, dtype=jnp.bfloat16, **opts)
    tol = ref.BF16_TOL
    step = lstm_reference(opts)
    ref.check_steps(cell, I, (3,), step, as_tuple, rtol=tol, atol=tol)


def test_fgr_feeds_previous_gates():
    """FGR is not a no-op: the same params without ``w_gg`` give another output."""
    cell = rnnjax.lstm(H, full_gate_recurrence=True)
    params, carry, xs = ref.setup(cell, I, (3,))
    _, y = cell.step(params, carry, xs[0])
    no_fgr = cell.step({**params, "w_gg": jnp.zeros_like(params["w_gg"])}, carry, xs[0])
    assert not np.allclose(y, no_fgr[1], atol=1e-3)


# --------------------------------------------------------------- params and layout


@pytest.mark.parametrize("option", list(OPTIONS))
def test_param_shapes(option):
    opts = OPTIONS[option]
    columns, sigmoid_gates = layout(opts)
    G, S = len(columns), len(sigmoid_gates)
    out = opts.get("proj_size") or H
    cell = rnnjax.lstm(H, **opts)
    params = jax.eval_shape(lambda: cell.init(jax.random.key(0), I))
    expected = {"w_x": (I, G * H), "w_h": (out, G * H), "b": (G * H,)}
    if opts.get("peephole"):
        expected.update({f"peephole_{n}": (H,) for n in sigmoid_gates})
    if opts.get("full_gate_recurrence"):
        expected["w_gg"] = (S * H, S * H)
    if opts.get("proj_size"):
        expected["w_hr"] = (H, P)
    if opts.get("layer_norm"):
        expected.update(
            ln_x_scale=(G * H,), ln_h_scale=(G * H,), ln_c_scale=(H,), ln_c_bias=(H,)
        )
    assert {k: tuple(v.shape) for k, v in params.items()} == expected
    assert all(v.dtype == jnp.float32 for v in params.values())


@pytest.mark.parametrize("option", ["vanilla", "cifg", "nig", "nog", "fgr"])
@pytest.mark.parametrize("forget_bias", [1.0, 0.0, 2.5])
def test_forget_bias_init(option, forget_bias):
    opts = OPTIONS[option]
    columns, _ = layout(opts)
    # Default bias init; cheap constant weights (only ``b`` is inspected here).
    cell = rnnjax.lstm(
        H,
        forget_bias=forget_bias,
        kernel_init=ref.const_init(0.0),
        recurrent_init=ref.const_init(0.0),
        **opts,
    )
    params = cell.init(jax.random.key(0), I)
    expected = {n: np.zeros(H) for n in columns}
    if "f" in columns:
        expected["f"] = np.full(H, forget_bias)
    got = ref.split(np.asarray(params["b"]), columns)
    for n in columns:
        np.testing.assert_array_equal(got[n], expected[n], err_msg=f"block {n}")


def test_default_forget_bias_is_one():
    params = rnnjax.lstm(H).init(jax.random.key(0), I)
    b = ref.split(np.asarray(params["b"]), "ifgo")
    np.testing.assert_array_equal(b["f"], np.ones(H))
    for n in "igo":
        np.testing.assert_array_equal(b[n], np.zeros(H))


@pytest.mark.parametrize("option", ["vanilla", "cifg", "fgr_cifg", "proj"])
def test_default_init(option):
    opts = OPTIONS[option]
    columns, sigmoid_gates = layout(opts)
    params = rnnjax.lstm(H, **opts).init(jax.random.key(0), I)
    # One independent orthogonal matrix per gate block of the recurrent weights
    # (orthonormal rows for the wide (P, H) blocks of a projection).
    ref.assert_orthonormal_blocks(params["w_h"], len(columns), "w_h")
    if "w_gg" in params:
        ref.assert_orthonormal_blocks(params["w_gg"], len(sigmoid_gates), "w_gg")
    # Glorot uniform input weights: bounded by sqrt(6 / (fan_in + fan_out)).
    limit = np.sqrt(6.0 / (I + len(columns) * H))
    assert np.all(np.abs(params["w_x"]) <= limit)
    assert np.std(params["w_x"]) > 0.2 * limit


@pytest.mark.parametrize("option", ["vanilla", "fgr", "proj", "cifg"])
def test_custom_initialisers_are_honoured(option):
    opts = OPTIONS[option]
    _, sigmoid_gates = layout(opts)
    S = len(sigmoid_gates)
    params = rnnjax.lstm(H, forget_bias=0.0, **ref.CUSTOM_INITS, **opts).init(
        jax.random.key(0), I
    )
    np.testing.assert_array_equal(params["w_x"], np.full(params["w_x"].shape, 0.25))
    np.testing.assert_array_equal(params["w_h"], np.full(params["w_h"].shape, -0.5))
    np.testing.assert_array_equal(params["b"], np.full(params["b"].shape, 0.75))
    if "w_gg" in params:  # a recurrent weight
        np.testing.assert_array_equal(params["w_gg"], np.full((S * H, S * H), -0.5))
    if "w_hr" in params:  # an input-side (kernel) weight
        np.testing.assert_array_equal(params["w_hr"], np.full((H, P), 0.25))


def test_forget_bias_adds_to_custom_bias_init():
    """Documented in ``Initializers``: the LSTM adds its forget_bias to ``b``."""
    params = rnnjax.lstm(H, forget_bias=1.0, bias_init=ref.const_init(0.75)).init(
        jax.random.key(0), I
    )
    b = ref.split(np.asarray(params["b"]), "ifgo")
    np.testing.assert_array_equal(b["f"], np.full(H, 1.75))
    for n in "igo":
        np.testing.assert_array_equal(b[n], np.full(H, 0.75))


# ------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(coupled=True, forget_gate=False),
        dict(coupled=True, input_gate=False),
    ],
    ids=["coupled_nfg", "coupled_nig"],
)
def test_coupled_without_both_gates_raises(kwargs):
    with pytest.raises(ValueError, match="coupled"):
        rnnjax.lstm(H, **kwargs)


@pytest.mark.parametrize("argname", ["input_activation", "output_activation"])
@pytest.mark.parametrize("name", ["swish", "Tanh", "identity"])
def test_unknown_activation_raises(argname, name):
    with pytest.raises(ValueError, match=argname):
        rnnjax.lstm(H, **{argname: name})


@pytest.mark.parametrize(
    "proj_size",
    [0, -2, 2.0, True],
)
def test_bad_proj_size_raises(proj_size):
    with pytest.raises(ValueError, match="proj_size"):
        rnnjax.lstm(H, proj_size=proj_size)


def test_fgr_without_sigmoid_gates_raises():
    with pytest.raises(ValueError, match="full_gate_recurrence"):
        rnnjax.lstm(
            H,
            input_gate=False,
            forget_gate=False,
            output_gate=False,
            full_gate_recurrence=True,
        )


# ------------------------------------------------------------- carry and project


@pytest.mark.parametrize("batch_shape", ref.BATCH_SHAPES, ids=ref.BATCH_IDS)
@pytest.mark.parametrize("option", ["vanilla", "proj", "fgr", "fgr_cifg", "everything"])
def test_initial_carry(option, batch_shape):
    opts = OPTIONS[option]
    _, sigmoid_gates = layout(opts)
    carry = rnnjax.lstm(H, **opts).initial_carry(batch_shape)
    assert isinstance(carry, rnnjax.LSTMState)
    assert carry.c.shape == (*batch_shape, H)
    assert carry.h.shape == (*batch_shape, opts.get("proj_size") or H)
    if opts.get("full_gate_recurrence"):
        assert carry.gates.shape == (*batch_shape, len(sigmoid_gates) * H)
    else:
        assert carry.gates is None
    for leaf in jax.tree.leaves(carry):
        assert leaf.dtype == jnp.float32
        np.testing.assert_array_equal(leaf, 0.0)


@pytest.mark.parametrize("batch_shape", ref.BATCH_SHAPES, ids=ref.BATCH_IDS)
@pytest.mark.parametrize("option", ["vanilla", "nig", "cifg", "layer_norm"])
def test_project_any_leading_dims(option, batch_shape):
    opts = OPTIONS[option]
    cell = rnnjax.lstm(H, **opts)
    params, _, xs = ref.setup(cell, I, batch_shape)
    z = cell.project(params, xs)  # (T, *B, I) -> (T, *B, G*H)
    p = ref.to64(params)
    from_x = ref.to64(xs) @ p["w_x"]
    if opts.get("layer_norm"):
        from_x = ref.layer_norm(from_x, p["ln_x_scale"])
    expected = from_x + p["b"]
    ref.assert_tree_close(z, expected, "project(xs)")
    for t in range(xs.shape[0]):
        ref.assert_tree_close(cell.project(params, xs[t]), expected[t], f"step {t}")


def test_chrono_init_sets_forget_and_input_biases():
    hidden, t_max = 64, 100
    cell = rnnjax.lstm(hidden, chrono_init=t_max, peephole=True)
    b = np.asarray(cell.init(jax.random.key(0), 3)["b"]).reshape(4, hidden)
    i, f, g, o = b  # gate blocks i, f, g, o
    assert np.all(f >= 0.0) and np.all(f <= np.log(t_max - 1) + 1e-6)
    assert f.std() > 0.3  # spread over the units, not one value
    np.testing.assert_array_equal(i, -f)
    np.testing.assert_array_equal(g, 0.0)
    np.testing.assert_array_equal(o, 0.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(chrono_init=2),
        dict(chrono_init=10.0),
        dict(chrono_init=True),
        dict(chrono_init=10, forget_gate=False),
        dict(chrono_init=10, coupled=True),
    ],
)
def test_chrono_init_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError, match="chrono_init"):
        rnnjax.lstm(4, **kwargs)

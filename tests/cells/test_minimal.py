"""minGRU and minLSTM against float64 NumPy implementations of Feng et al. 2024.

minGRU (blocks ``z, h``)::

    z  = sigmoid(x W_xz + b_z)
    h~ = x W_xh + b_h                 (g(x W_xh + b_h) in the log-space variant)
    h' = (1 - z) * h + z * h~

minLSTM (blocks ``f, i, h``)::

    f  = sigmoid(x W_xf + b_f),  i = sigmoid(x W_xi + b_i)
    f' = f / (f + i),  i' = i / (f + i)
    h~ = x W_xh + b_h                 (g(...) in the log-space variant)
    h' = f' * h + i' * h~

with ``g(x) = x + 0.5`` for ``x >= 0`` and ``sigmoid(x)`` otherwise.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from tests.cells import _reference as ref

# Their time is compiling small programs: XLA's cheaper passes (conftest).
pytestmark = pytest.mark.usefixtures("fast_compile")

I, H = 4, 5


def g(x):
    return np.where(x >= 0, x + 0.5, ref.sigmoid(x))


def min_gru_reference(log_space):
    def step(p, h, x):
        wx, b = ref.split(p["w_x"], "zh"), ref.split(p["b"], "zh")
        z = ref.sigmoid(x @ wx["z"] + b["z"])
        cand = x @ wx["h"] + b["h"]
        cand = g(cand) if log_space else cand
        h = (1.0 - z) * h + z * cand
        return h, h

    return step


def min_lstm_reference(log_space):
    def step(p, h, x):
        wx, b = ref.split(p["w_x"], "fih"), ref.split(p["b"], "fih")
        f = ref.sigmoid(x @ wx["f"] + b["f"])
        i = ref.sigmoid(x @ wx["i"] + b["i"])
        f_norm, i_norm = f / (f + i), i / (f + i)
        cand = x @ wx["h"] + b["h"]
        cand = g(cand) if log_space else cand
        h = f_norm * h + i_norm * cand
        return h, h

    return step


# (name -> (constructor, reference step, gate blocks))
CELLS = {
    "min_gru": (lambda **kw: rnnjax.min_gru(H, **kw), min_gru_reference(False), 2),
    "min_gru_log": (
        lambda **kw: rnnjax.min_gru(H, log_space=True, **kw),
        min_gru_reference(True),
        2,
    ),
    "min_lstm": (lambda **kw: rnnjax.min_lstm(H, **kw), min_lstm_reference(False), 3),
    "min_lstm_log": (
        lambda **kw: rnnjax.min_lstm(H, log_space=True, **kw),
        min_lstm_reference(True),
        3,
    ),
}


@pytest.mark.parametrize("batch_shape", ref.BATCH_SHAPES, ids=ref.BATCH_IDS)
@pytest.mark.parametrize("name", list(CELLS))
def test_matches_reference(name, batch_shape):
    make, reference_step, _ = CELLS[name]
    ref.check_steps(make(), I, batch_shape, reference_step)


@pytest.mark.parametrize("name", list(CELLS))
def test_bfloat16_compute(name):
    """bfloat16 input projection, float32 params, carry and outputs."""
    make, reference_step, _ = CELLS[name]
    tol = ref.BF16_TOL
    ref.check_steps(
        make(dtype=jnp.bfloat16), I, (3,), reference_step, rtol=tol, atol=tol
    )


@pytest.mark.parametrize("name", list(CELLS))
def test_linear_coefficients(name):
    """``recur(h, z) == a * h + b``, with ``0 < a < 1``; the rec_mask multiplies
    ``h``; the cell says it is linear and not of the fused form."""
    cell = CELLS[name][0]()
    params, carry, xs = ref.setup(cell, I, (3,))
    z = cell.project(params, xs[0])
    a, b = cell.linear_coefficients(params, z)
    assert a.shape == b.shape == (3, H)
    assert np.all((np.asarray(a) > 0) & (np.asarray(a) < 1))
    new, y = cell.recur(params, carry, z)
    ref.assert_tree_close(new, ref.to64(a * carry + b), "recur")
    ref.assert_tree_close(y, ref.to64(new), "y == h")
    mask = jnp.asarray(np.random.default_rng(0).random((3, H)) < 0.5, jnp.float32)
    masked, _ = cell.recur(params, carry, z, rec_mask=mask)
    ref.assert_tree_close(masked, ref.to64(a * (mask * carry) + b), "rec_mask")
    assert isinstance(cell, rnnjax.LinearRecurrenceCell)
    assert not isinstance(cell, rnnjax.FusedFormCell)


def test_min_lstm_gates_are_stable():
    """The normalised gates stay finite where ``f + i`` underflows in float32, and
    equal halves when the two pre-activations are equal."""
    cell = rnnjax.min_lstm(1)
    z = jnp.array([[-200.0, -200.0, 3.0], [-300.0, 50.0, 3.0], [20.0, -120.0, 3.0]])
    a, b = cell.linear_coefficients({}, z)
    np.testing.assert_allclose(a[:, 0], [0.5, 0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(b[:, 0], [1.5, 3.0, 0.0], atol=1e-6)


def test_log_space_candidate_and_positive_state():
    """``g`` is the paper's (continuous at 0); from a positive state the
    log-space variant stays positive whatever the inputs."""
    x = np.linspace(-6, 6, 25)
    np.testing.assert_allclose(rnnjax.cells.minimal.g(jnp.asarray(x)), g(x), 1e-6)
    for make in (rnnjax.min_gru, rnnjax.min_lstm):
        cell = make(H, log_space=True)
        params, _, xs = ref.setup(cell, I, (3,))
        params = jax.tree.map(lambda p: 4.0 * p, params)
        carry = jnp.full((3, H), 0.1)
        for t in range(xs.shape[0]):
            carry, _ = cell.step(params, carry, xs[t])
            assert np.all(np.asarray(carry) > 0)


@pytest.mark.parametrize("name", list(CELLS))
def test_param_shapes_and_default_init(name):
    make, _, G = CELLS[name]
    params = make().init(jax.random.key(0), I)
    assert {k: tuple(v.shape) for k, v in params.items()} == {
        "w_x": (I, G * H),
        "b": (G * H,),
    }
    assert all(v.dtype == jnp.float32 for v in params.values())
    np.testing.assert_array_equal(params["b"], 0.0)
    limit = np.sqrt(6.0 / (I + G * H))  # Glorot uniform
    assert np.all(np.abs(np.asarray(params["w_x"])) <= limit)
    assert np.std(np.asarray(params["w_x"])) > limit / 4


@pytest.mark.parametrize("name", list(CELLS))
def test_custom_initialisers_are_honoured(name):
    make, _, G = CELLS[name]
    inits = {k: v for k, v in ref.CUSTOM_INITS.items() if k != "recurrent_init"}
    params = make(**inits).init(jax.random.key(0), I)
    np.testing.assert_array_equal(params["w_x"], np.full((I, G * H), 0.25))
    np.testing.assert_array_equal(params["b"], np.full((G * H,), 0.75))


@pytest.mark.parametrize("batch_shape", ref.BATCH_SHAPES, ids=ref.BATCH_IDS)
def test_initial_carry(batch_shape):
    for make, _, _ in CELLS.values():
        carry = make().initial_carry(batch_shape)
        assert carry.shape == (*batch_shape, H)
        assert carry.dtype == jnp.float32
        np.testing.assert_array_equal(carry, 0.0)


@pytest.mark.parametrize("name", ["min_gru", "min_lstm"])
def test_project_any_leading_dims(name):
    cell = CELLS[name][0]()
    params, _, xs = ref.setup(cell, I, (2, 3))
    z = cell.project(params, xs)  # (T, *B, I) -> (T, *B, G*H)
    p = ref.to64(params)
    expected = ref.to64(xs) @ p["w_x"] + p["b"]
    ref.assert_tree_close(z, expected, "project(xs)")
    ref.assert_tree_close(cell.project(params, xs[0, 0, 0]), expected[0, 0, 0], "x")


def test_cells_are_hashable_and_configured():
    assert rnnjax.min_gru(H) == rnnjax.min_gru(H)
    assert hash(rnnjax.min_lstm(H)) == hash(rnnjax.min_lstm(H))
    assert rnnjax.min_gru(H) != rnnjax.min_gru(H, log_space=True)
    assert isinstance(rnnjax.min_gru(H), rnnjax.MinGRU)
    assert isinstance(rnnjax.min_lstm(H), rnnjax.MinLSTM)
    assert isinstance(rnnjax.min_lstm(H), rnnjax.Cell)
    with pytest.raises(ValueError, match="hidden_size"):
        rnnjax.min_gru(0)


def test_wrong_params_are_named():
    cell = rnnjax.min_gru(H)
    params = rnnjax.gru(H).init(jax.random.key(0), I)
    with pytest.raises(ValueError, match="params"):
        rnnjax.unroll(cell, params, jnp.zeros((2, 3, I)))
    with pytest.raises(ValueError, match="xs"):
        rnnjax.unroll(cell, cell.init(jax.random.key(0), I), jnp.zeros((2, 3, I + 1)))

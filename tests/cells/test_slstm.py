"""The sLSTM against a float64 NumPy implementation of the xLSTM paper's equations
(Beck et al. 2024, eqs. 8-17), as restated in ``rnnjax/cells/slstm.py``:

- ``a = x W_x + b + h_{t-1} R``, columns gate-major ``i, f, z, o``, each block of
  ``H`` columns head-major; ``R (H, 4H)`` is block-diagonal: head ``n``'s rows
  ``n*DH..`` meet only head ``n``'s columns of each gate block, and ``w_h[n]``
  ``(DH, 4*DH)`` holds them gate-major;
- ``z = tanh(a_z)``, ``i = exp(a_i)``, ``f = sigmoid(a_f)`` or ``exp(a_f)``,
  ``o = sigmoid(a_o)``; stabiliser ``m_t = max(log f + m_{t-1}, log i)``
  (``log i`` where ``n_{t-1} == 0``), ``i' = exp(log i - m_t)``,
  ``f' = exp(log f + m_{t-1} - m_t)`` (1 where ``n_{t-1} == 0``);
  ``c = f' c + i' z``, ``n = f' n + i'``, ``h = o c / n``.

Then: the fused kernel against the scan (values and derivatives), the package's
own pointwise function and cell (``xlstm``, PyTorch), initialisation and errors.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax import kernels
from tests.cells import _reference as ref
from tests.conftest import randomize
from tests.kernels._compare import (
    FAST_COMPILE,
    assert_same_derivatives,
    random_like,
    run_impl,
)

I, H, T = 3, 8, 5


# ------------------------------------------------------------------- the reference


def block_diagonal(w_h):
    """``R (H, 4H)`` from the per-head ``w_h (NH, DH, 4*DH)``, by the layout."""
    heads, dh, _ = w_h.shape
    hidden = heads * dh
    r = np.zeros((hidden, 4 * hidden))
    for n in range(heads):
        for g in range(4):
            rows = slice(n * dh, (n + 1) * dh)
            cols = slice(g * hidden + n * dh, g * hidden + (n + 1) * dh)
            r[rows, cols] = w_h[n][:, g * dh : (g + 1) * dh]
    return r


def slstm_reference(forget_gate, rec_mask=None):
    def step(p, carry, x):
        c, n, m, h = carry
        h_in = h if rec_mask is None else h * rec_mask
        a = x @ p["w_x"] + p["b"] + h_in @ block_diagonal(p["w_h"])
        a_i, a_f, a_z, a_o = np.split(a, 4, axis=-1)
        log_f = -np.logaddexp(0.0, -a_f) if forget_gate == "sigmoid" else a_f
        fresh = n == 0.0
        m_new = np.where(fresh, a_i, np.maximum(log_f + m, a_i))
        i = np.exp(a_i - m_new)
        f = np.where(fresh, 1.0, np.exp(np.where(fresh, 0.0, log_f + m - m_new)))
        c = f * c + i * np.tanh(a_z)
        n = f * n + i
        h = ref.sigmoid(a_o) * c / n
        return (c, n, m_new, h), h

    return step


def random_carry(batch_shape, seed, zero_share=0.3):
    """A carry with ``n > 0``, except a share of units in the zero state
    (``c = n = 0``), so that both stabiliser rules run in one step."""
    r = np.random.default_rng(seed)
    shape = (*batch_shape, H)
    fresh = r.random(shape) < zero_share
    c = np.where(fresh, 0.0, r.standard_normal(shape))
    n = np.where(fresh, 0.0, np.abs(r.standard_normal(shape)) + 0.5)
    m = r.standard_normal(shape)
    h = r.standard_normal(shape)
    return rnnjax.SLSTMState(*(jnp.asarray(v, jnp.float32) for v in (c, n, m, h)))


def compiled(f, *args):
    """``jit(f)`` compiled once for ``args``' shapes, with XLA's cheaper passes."""
    return jax.jit(f).lower(*args).compile(FAST_COMPILE)


def check_steps(cell, batch_shape, carry, rtol=ref.RTOL, atol=ref.ATOL, seed=0):
    """``cell.step`` for ``T`` steps against the reference run on its own state."""
    key = jax.random.key(seed)
    params = randomize(jax.eval_shape(lambda: cell.init(key, I)), seed=seed)
    xs = np.random.default_rng(seed + 2).standard_normal((T, *batch_shape, I))
    xs = jnp.asarray(xs, jnp.float32)
    step = slstm_reference(cell.forget_gate)
    p64, ref_carry = ref.to64(params), ref.to64(tuple(carry))
    cell_step = compiled(cell.step, params, carry, xs[0])
    for t in range(T):
        carry, y = cell_step(params, carry, xs[t])
        ref_carry, ref_y = step(p64, ref_carry, ref.to64(xs[t]))
        ref.assert_tree_close(y, ref_y, f"y at step {t}", rtol, atol)
        ref.assert_tree_close(tuple(carry), ref_carry, f"carry at {t}", rtol, atol)


# ------------------------------------------------------------------------- maths


# Every (forget gate, heads) pair once, the batch shapes (), (2,), (2, 3) in turn.
CASES = [
    ("sigmoid", 1, ()),
    ("sigmoid", 2, (2,)),
    ("sigmoid", 4, (2, 3)),
    ("exp", 1, (2, 3)),
    ("exp", 2, ()),
    ("exp", 4, (2,)),
]


@pytest.mark.parametrize(("forget_gate", "num_heads", "batch_shape"), CASES)
def test_matches_reference(forget_gate, num_heads, batch_shape):
    """From a running state with a share of units in the zero state (both
    stabiliser rules in one step), ``T`` steps."""
    cell = rnnjax.slstm(H, num_heads=num_heads, forget_gate=forget_gate)
    check_steps(cell, batch_shape, random_carry(batch_shape, 1))


@pytest.mark.parametrize("forget_gate", ["sigmoid", "exp"])
def test_stabiliser_cancels(forget_gate):
    """From the zero state, eqs. (8)-(14) without the stabiliser (``i = exp(a_i)``,
    ``f`` itself) give the same ``h``, and ``c``, ``n`` scaled by ``exp(m_t)``."""
    cell = rnnjax.slstm(H, num_heads=4, forget_gate=forget_gate)
    params = randomize(jax.eval_shape(lambda: cell.init(jax.random.key(0), I)), seed=4)
    xs = jnp.asarray(np.random.default_rng(5).standard_normal((T, 2, I)), jnp.float32)
    p = ref.to64(params)
    r = block_diagonal(p["w_h"])
    carry = cell.initial_carry((2,))
    c = n = h = np.zeros((2, H))
    cell_step = compiled(cell.step, params, carry, xs[0])
    for t in range(T):
        carry, y = cell_step(params, carry, xs[t])
        a = np.asarray(xs[t], np.float64) @ p["w_x"] + p["b"] + h @ r
        a_i, a_f, a_z, a_o = np.split(a, 4, axis=-1)
        f = ref.sigmoid(a_f) if forget_gate == "sigmoid" else np.exp(a_f)
        c = f * c + np.exp(a_i) * np.tanh(a_z)
        n = f * n + np.exp(a_i)
        h = ref.sigmoid(a_o) * c / n
        np.testing.assert_allclose(y, h, rtol=1e-5, atol=1e-6)
        scale = np.exp(np.asarray(carry.m, np.float64))
        np.testing.assert_allclose(carry.c * scale, c, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(carry.n * scale, n, rtol=1e-5)


def test_rec_mask():
    """``rec_mask (*B, H)`` multiplies ``h_{t-1}`` where it enters ``R``."""
    cell = rnnjax.slstm(H, num_heads=2)
    params = randomize(jax.eval_shape(lambda: cell.init(jax.random.key(0), I)), seed=6)
    carry = random_carry((3,), 7)
    mask = jnp.asarray(np.random.default_rng(8).random((3, H)) < 0.6, jnp.float32)
    z = cell.project(params, jnp.asarray(np.ones((3, I)), jnp.float32))
    new, y = compiled(cell.recur, params, carry, z, mask)(params, carry, z, mask)
    step = slstm_reference("sigmoid", rec_mask=np.asarray(mask, np.float64))
    want_carry, want_y = step(ref.to64(params), ref.to64(tuple(carry)), np.ones((3, I)))
    ref.assert_tree_close(y, want_y, "y")
    ref.assert_tree_close(tuple(new), want_carry, "carry")


def test_bfloat16_compute():
    """bfloat16 matrix products; float32 params, carry and outputs."""
    cell = rnnjax.slstm(H, num_heads=2, dtype=jnp.bfloat16)
    tol = ref.BF16_TOL
    check_steps(cell, (3,), random_carry((3,), 9), rtol=tol, atol=tol)


def test_headwise_linear():
    r = np.random.default_rng(10)
    w = jnp.asarray(r.standard_normal((3, 2, 5)), jnp.float32)
    dense = np.zeros((6, 15))
    for n in range(3):
        dense[2 * n : 2 * n + 2, 5 * n : 5 * n + 5] = w[n]
    for lead in [(), (4,), (2, 3)]:
        x = jnp.asarray(r.standard_normal((*lead, 6)), jnp.float32)
        y = rnnjax.headwise_linear(x, w)
        assert y.shape == (*lead, 15) and y.dtype == jnp.float32
        np.testing.assert_allclose(y, np.asarray(x, np.float64) @ dense, rtol=1e-5)
    y16 = rnnjax.headwise_linear(x, w, jnp.bfloat16)
    assert y16.dtype == jnp.float32
    np.testing.assert_allclose(y16, np.asarray(x, np.float64) @ dense, atol=0.1)


def test_rec_product_is_the_block_diagonal_product():
    cell = rnnjax.slstm(H, num_heads=4)
    r = np.random.default_rng(11)
    w_h = jnp.asarray(r.standard_normal((4, 2, 8)), jnp.float32)
    h = jnp.asarray(r.standard_normal((2, 3, H)), jnp.float32)
    want = np.asarray(h, np.float64) @ block_diagonal(np.asarray(w_h, np.float64))
    np.testing.assert_allclose(cell.rec_product(h, w_h), want, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------ the package's sLSTM


def test_matches_package_pointwise():
    """``update`` equals ``xlstm``'s vanilla ``slstm_forward_pointwise`` (its
    states ``(y, c, n, m)``), from a running state and from the zero state."""
    torch = pytest.importorskip("torch")
    vanilla = pytest.importorskip("xlstm.blocks.slstm.src.vanilla.slstm")
    cell = rnnjax.slstm(H, num_heads=2)
    r = np.random.default_rng(12)
    wx, ry = (r.standard_normal((3, 4 * H)).astype(np.float32) for _ in range(2))
    b = r.standard_normal((4 * H,)).astype(np.float32)
    for carry in (random_carry((3,), 13, zero_share=0.0), cell.initial_carry((3,))):
        states = np.stack([np.asarray(carry.h), carry.c, carry.n, carry.m])
        want, _ = vanilla.slstm_forward_pointwise(
            torch.from_numpy(wx),
            torch.from_numpy(ry),
            torch.from_numpy(b[None]),
            torch.from_numpy(states),
            constants={},
        )
        new, y = cell.update({}, carry, jnp.asarray(wx + b), jnp.asarray(ry))
        got = np.stack([y, new.c, new.n, new.m])
        np.testing.assert_allclose(got, want.numpy(), rtol=2e-5, atol=1e-6)


def test_matches_package_cell():
    """The package's vanilla cell (its ``recurrent_kernel (NH, DH, 4, DH)`` and
    ``bias (NH, 4, DH)`` taken from ours by the documented layout) over a sequence
    of pre-activations; and its forget-gate bias initialisations equal ours."""
    torch = pytest.importorskip("torch")
    cell_module = pytest.importorskip("xlstm.blocks.slstm.cell")
    NH, DH = 2, H // 2
    config = cell_module.sLSTMCellConfig(
        hidden_size=H, num_heads=NH, backend="vanilla", dtype="float32"
    )
    theirs = cell_module.sLSTMCell_vanilla(config)
    cell = rnnjax.slstm(H, num_heads=NH)
    params = randomize(jax.eval_shape(lambda: cell.init(jax.random.key(0), I)), seed=14)
    w_h, b = np.array(params["w_h"]), np.array(params["b"])
    theirs.recurrent_kernel[:] = torch.from_numpy(w_h.reshape(NH, DH, 4, DH))
    theirs.bias[:] = torch.from_numpy(b.reshape(4, NH, DH).transpose(1, 0, 2).copy())
    zs = np.random.default_rng(15).standard_normal((2, T, 4 * H)).astype(np.float32)
    with torch.no_grad():
        out, state = theirs(torch.from_numpy(zs))  # (B, NH, T, DH), (4, B, H)
    inputs = kernels.StepInputs(jnp.asarray(zs.swapaxes(0, 1)), bias=params["b"])
    final, ys = kernels.scan_recurrence(cell, params, cell.initial_carry((2,)), inputs)
    want_ys = out.numpy().transpose(2, 0, 1, 3).reshape(T, 2, H)
    np.testing.assert_allclose(ys, want_ys, rtol=2e-5, atol=1e-6)
    want_final = state.numpy()  # (y, c, n, m)
    got_final = np.stack([final.h, final.c, final.n, final.m])
    np.testing.assert_allclose(got_final, want_final, rtol=2e-5, atol=1e-6)

    for scheme, block, blocks in [
        ("powerlaw_blockdependent", 0, 1),
        ("powerlaw_blockdependent", 1, 3),
        ("small_init", 0, 1),
    ]:
        config = cell_module.sLSTMCellConfig(
            hidden_size=H, num_heads=NH, backend="vanilla", dtype="float32",
            bias_init=scheme, _block_idx=block, _num_blocks=blocks,
        )  # fmt: skip
        their_b = cell_module.sLSTMCell_vanilla(config).bias[:].numpy()
        ours = rnnjax.slstm(
            H, num_heads=NH, forget_bias=scheme, block_index=block, num_blocks=blocks
        ).init(jax.random.key(0), I)["b"]
        np.testing.assert_allclose(
            np.asarray(ours).reshape(4, NH, DH).transpose(1, 0, 2),
            their_b,
            rtol=1e-5,
            atol=1e-6,
            err_msg=f"{scheme} {block}/{blocks}",
        )


# ------------------------------------------------------------ fused against scan


def test_fused_equals_scan():
    """Lengths (zero, full, partial), reversal, resets and a recurrent mask; the
    values and VJPs (w.r.t. params, xs and carry) and JVPs; the exponential
    forget gate, from a carry with a share of units in the zero state (resets
    return to it: both stabiliser rules run mid-sequence)."""
    r = np.random.default_rng(22)
    cell = rnnjax.slstm(H, num_heads=2, forget_gate="exp")
    params = randomize(jax.eval_shape(lambda: cell.init(jax.random.key(0), I)), seed=22)
    xs = jnp.asarray(r.standard_normal((2, 3, T, I)), jnp.float32)
    primals = (params, xs, random_carry((2, 3), 23))
    kwargs = dict(
        seq_lengths=jnp.asarray([[0, T, 2], [T - 1, 1, T]], jnp.int32),
        resets=jnp.asarray(r.random((2, 3, T)) < 0.3),
        rec_mask=jnp.asarray((r.random((2, 3, H)) < 0.7) / 0.7, jnp.float32),
        reverse=True,
    )
    fused, scan = (run_impl(cell, impl, **kwargs) for impl in ("fused", "scan"))
    tangents = random_like(primals, 24)
    assert_same_derivatives(fused, scan, primals, tangents, seed=25, values=False)


def test_auto_selects_fused():
    cell = rnnjax.slstm(H)
    assert isinstance(cell, rnnjax.FusedFormCell) and cell.fusable
    assert kernels.select(cell, "auto") is kernels.fused_recurrence
    params = cell.init(jax.random.key(0), I)
    assert cell.rec_width(params) == H


# --------------------------------------------------------------- params and init


def test_param_shapes_and_defaults():
    cell = rnnjax.slstm(H, num_heads=2)
    params = cell.init(jax.random.key(0), I)
    shapes = {k: tuple(v.shape) for k, v in params.items()}
    assert shapes == {"w_x": (I, 4 * H), "w_h": (2, 4, 16), "b": (4 * H,)}
    assert all(v.dtype == jnp.float32 for v in params.values())
    np.testing.assert_array_equal(params["w_h"], 0.0)  # the package's default
    limit = np.sqrt(6.0 / (I + 4 * H))  # Glorot uniform
    assert np.all(np.abs(params["w_x"]) <= limit)
    assert np.std(params["w_x"]) > 0.2 * limit
    b = ref.split(np.asarray(params["b"]), "ifzo")
    for name in "izo":
        np.testing.assert_array_equal(b[name], 0.0)
    head = 5.0 - 12.0 * np.linspace(0.0, 1.0, 4) ** 0.3  # powerlaw, one block
    np.testing.assert_allclose(b["f"], np.tile(head, 2), rtol=1e-6)
    carry = cell.initial_carry((2, 3))
    assert isinstance(carry, rnnjax.SLSTMState)
    assert all(leaf.shape == (2, 3, H) and not leaf.any() for leaf in carry)


@pytest.mark.parametrize(
    ("forget_bias", "head"),
    [(2.5, np.full(4, 2.5)), ("small_init", np.linspace(3.0, 6.0, 4))],
)
def test_forget_bias(forget_bias, head):
    cell = rnnjax.slstm(
        H, num_heads=2, forget_bias=forget_bias, kernel_init=ref.const_init(0.0)
    )
    b = ref.split(np.asarray(cell.init(jax.random.key(0), I)["b"]), "ifzo")
    np.testing.assert_allclose(b["f"], np.tile(head, 2), rtol=1e-6)
    one_unit_heads = rnnjax.slstm(4, num_heads=4).init(jax.random.key(0), I)["b"]
    np.testing.assert_array_equal(one_unit_heads[4:8], 5.0)  # DH = 1


def test_custom_initialisers_are_honoured():
    cell = rnnjax.slstm(H, num_heads=2, forget_bias=0.0, **ref.CUSTOM_INITS)
    params = cell.init(jax.random.key(0), I)
    np.testing.assert_array_equal(params["w_x"], 0.25)
    np.testing.assert_array_equal(params["w_h"], -0.5)
    np.testing.assert_array_equal(params["b"], 0.75)


# ------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(hidden_size=6, num_heads=4), r"num_heads: expected a divisor.*6.*got 4"),
        (dict(hidden_size=8, num_heads=0), "num_heads: expected a positive int"),
        (dict(hidden_size=8, forget_gate="relu"), r"forget_gate: expected.*'relu'"),
        (dict(hidden_size=8, forget_bias="ones"), r"forget_bias: expected.*'ones'"),
        (dict(hidden_size=8, forget_bias=True), "forget_bias: expected"),
        (dict(hidden_size=8, block_index=2, num_blocks=2), r"block_index:.*got 2"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rnnjax.slstm(**kwargs)


def test_headwise_linear_bad_shapes():
    w = jnp.ones((2, 3, 4))
    with pytest.raises(ValueError, match=r"x: expected \(\.\.\., 6\).*got shape \(5,"):
        rnnjax.headwise_linear(jnp.ones((5, 7)), w)
    with pytest.raises(ValueError, match=r"w: expected .*\(NH, Din, Dout\).*\(6, 4\)"):
        rnnjax.headwise_linear(jnp.ones((5, 6)), jnp.ones((6, 4)))


def test_dense_recurrent_weight_is_refused():
    """An LSTM-shaped ``w_h (H, 4H)`` in place of the head-wise one."""
    cell = rnnjax.slstm(H)
    params = {"w_x": jnp.ones((I, 4 * H)), "w_h": jnp.ones((H, 4 * H))}
    params["b"] = jnp.ones((4 * H,))
    with pytest.raises(ValueError, match=r"params: expected .*'w_h': \(4, 2, 8\)"):
        rnnjax.unroll(cell, params, jnp.ones((2, T, I)))

"""The mLSTM cell against float64 NumPy implementations of Beck et al. 2024.

The paper's mLSTM (eqs. 19-27), per head, with the matrix memory ``C[dv, dk]`` in
the paper's orientation (rnnjax stores its transpose) and ``a = x W_x + b`` split
into ``q, k, v, o`` (``H`` each) and ``i~, f~`` (one per head)::

    k = a_k / sqrt(DH),  o = sigmoid(a_o)
    i = exp(i~),  f = sigmoid(f~)   (or exp(f~))
    C = f C + i v k^T,  n = f n + i k
    h~ = C q / max(|n^T q|, 1),  h = o * h~

and its stabilised form (the paper's appendix, with the ``xlstm`` package's
``eps``): ``m = max(log f + m, i~)``, ``i' = exp(i~ - m)``,
``f' = exp(log f + m_prev - m)`` in place of ``i``, ``f``, and
``h~ = C q / (max(|n^T q|, exp(-m)) + eps)``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax import kernels
from tests.cells import _reference as ref

I, H, NH = 3, 8, 2
DH = H // NH


def _blocks(p, x, nh=NH):
    """``q, k, v (..., nh, dh)``, ``o (..., H)``, ``i~, f~ (..., nh)``."""
    a = x @ p["w_x"] + p["b"]
    h = (a.shape[-1] - 2 * nh) // 4
    q, k, v, o = (a[..., j * h : (j + 1) * h] for j in range(4))
    i_t, f_t = a[..., 4 * h : 4 * h + nh], a[..., 4 * h + nh :]
    dh = h // nh
    heads = lambda u: u.reshape((*u.shape[:-1], nh, dh))
    return heads(q), heads(k) / np.sqrt(dh), heads(v), ref.sigmoid(o), i_t, f_t


def _log_f(f_t, forget_gate):
    return -np.log1p(np.exp(-f_t)) if forget_gate == "sigmoid" else f_t


def stabilised_reference(forget_gate, eps=1e-6):
    """One step of the stabilised equations; carry ``(C[dv, dk], n, m)``."""

    def step(p, carry, x):
        C, n, m = carry
        q, k, v, o, i_t, f_t = _blocks(p, x)
        log_f = _log_f(f_t, forget_gate)
        m_new = np.maximum(log_f + m, i_t)
        i_s, f_s = np.exp(i_t - m_new), np.exp(log_f + m - m_new)
        C = f_s[..., None, None] * C + i_s[..., None, None] * (
            v[..., :, None] * k[..., None, :]
        )
        n = f_s[..., None] * n + i_s[..., None] * k
        num = np.einsum("...vk,...k->...v", C, q)
        den = np.maximum(np.abs(np.sum(n * q, -1)), np.exp(-m_new)) + eps
        return (C, n, m_new), o * (num / den[..., None]).reshape(o.shape)

    return step


def paper_sequence(p, xs, forget_gate, nh=NH):
    """The unstabilised equations over ``xs (T, *B, I)`` from the zero state, with
    ``nh`` heads; returns ``ys (T, *B, H)``."""
    dh = (p["w_x"].shape[-1] - 2 * nh) // 4 // nh
    C = np.zeros((*xs.shape[1:-1], nh, dh, dh))
    n = np.zeros((*xs.shape[1:-1], nh, dh))
    ys = []
    for x in xs:
        q, k, v, o, i_t, f_t = _blocks(p, x, nh)
        i_g, f_g = np.exp(i_t), np.exp(_log_f(f_t, forget_gate))
        C = f_g[..., None, None] * C + i_g[..., None, None] * (
            v[..., :, None] * k[..., None, :]
        )
        n = f_g[..., None] * n + i_g[..., None] * k
        num = np.einsum("...vk,...k->...v", C, q)
        den = np.maximum(np.abs(np.sum(n * q, -1)), 1.0)
        ys.append(o * (num / den[..., None]).reshape(o.shape))
    return np.stack(ys)


def to_paper(carry):
    """rnnjax's `MLSTMState` as the reference's ``(C[dv, dk], n, m)``."""
    return (jnp.swapaxes(carry.C, -1, -2), carry.n, carry.m)


def make(**kw):
    return rnnjax.mlstm(H, num_heads=NH, **kw)


# ---------------------------------------------------------------------- equations


@pytest.mark.parametrize("batch_shape", ref.BATCH_SHAPES, ids=ref.BATCH_IDS)
def test_matches_reference(batch_shape):
    """Steps from a random state (random ``m`` too) against the stabilised
    equations, in float64."""
    ref.check_steps(
        make(), I, batch_shape, stabilised_reference("sigmoid"), carry_to_ref=to_paper
    )


def test_exp_forget_gate_matches_reference():
    ref.check_steps(
        make(forget_gate="exp", eps=1e-3),
        I,
        (3,),
        stabilised_reference("exp", eps=1e-3),
        carry_to_ref=to_paper,
    )


@pytest.mark.parametrize("forget_gate", ["sigmoid", "exp"])
def test_unroll_equals_the_unstabilised_paper_equations(forget_gate):
    """From the zero state the stabiliser changes nothing but the ``eps`` term:
    ``rnnjax.unroll`` (``auto``: the chunkwise form, chunks of 3) equals the
    paper's plain equations."""
    cell = make(forget_gate=forget_gate, chunk_size=3)
    params, _, _ = ref.setup(cell, I, (2,))
    if forget_gate == "exp":  # keep f = exp(f~) below 1 on average
        params = {**params, "b": params["b"].at[-NH:].set(-1.0)}
    xs = jnp.asarray(np.random.default_rng(3).standard_normal((2, 7, I)), jnp.float32)
    _, ys = jax.jit(lambda p, x: rnnjax.unroll(cell, p, x))(params, xs)
    want = paper_sequence(
        ref.to64(params), ref.to64(jnp.swapaxes(xs, 0, 1)), forget_gate
    )
    np.testing.assert_allclose(ys, np.swapaxes(want, 0, 1), rtol=1e-5, atol=1e-5)


def test_bfloat16_compute():
    """bfloat16 input projection; float32 params, carry and outputs."""
    tol = ref.BF16_TOL
    ref.check_steps(
        make(dtype=jnp.bfloat16),
        I,
        (3,),
        stabilised_reference("sigmoid"),
        carry_to_ref=to_paper,
        rtol=tol,
        atol=tol,
    )


# ---------------------------------------------------------------------- parameters


def test_param_shapes_and_default_init():
    """``w_x (I, Z)``, ``b (Z,)``, ``Z = 4H + 2NH`` laid out ``q, k, v, o, i, f``;
    Glorot-uniform ``w_x``; the forget block of ``b`` is ``linspace(3, 6, NH)``, the
    rest zero."""
    cell = rnnjax.mlstm(H, num_heads=4)
    params = cell.init(jax.random.key(0), I)
    Z = 4 * H + 2 * 4
    assert cell.input_width == Z
    assert {k: tuple(v.shape) for k, v in params.items()} == {"w_x": (I, Z), "b": (Z,)}
    assert all(v.dtype == jnp.float32 for v in params.values())
    np.testing.assert_allclose(params["b"][-4:], [3.0, 4.0, 5.0, 6.0])
    np.testing.assert_array_equal(params["b"][:-4], 0.0)
    limit = np.sqrt(6.0 / (I + Z))
    assert np.all(np.abs(np.asarray(params["w_x"])) <= limit)
    assert np.std(np.asarray(params["w_x"])) > limit / 4


def test_custom_initialisers_are_honoured():
    """``bias_init`` replaces the whole bias, the forget block included."""
    inits = {k: v for k, v in ref.CUSTOM_INITS.items() if k != "recurrent_init"}
    params = make(**inits).init(jax.random.key(0), I)
    Z = 4 * H + 2 * NH
    np.testing.assert_array_equal(params["w_x"], np.full((I, Z), 0.25))
    np.testing.assert_array_equal(params["b"], np.full((Z,), 0.75))


@pytest.mark.parametrize("batch_shape", ref.BATCH_SHAPES, ids=ref.BATCH_IDS)
def test_initial_carry(batch_shape):
    carry = make().initial_carry(batch_shape)
    assert isinstance(carry, rnnjax.MLSTMState)
    shapes = [(*batch_shape, NH, DH, DH), (*batch_shape, NH, DH), (*batch_shape, NH)]
    assert [tuple(c.shape) for c in carry] == shapes
    for leaf in carry:
        assert leaf.dtype == jnp.float32
        np.testing.assert_array_equal(leaf, 0.0)


def test_project_any_leading_dims():
    cell = make()
    params, _, xs = ref.setup(cell, I, (2, 3))
    p = ref.to64(params)
    expected = ref.to64(xs) @ p["w_x"] + p["b"]
    ref.assert_tree_close(cell.project(params, xs), expected, "project(xs)")


# ---------------------------------------------------------------------- capabilities


def test_capabilities_and_select():
    """A `ParallelFormCell`, neither fused-form nor linear; ``auto`` picks the
    chunkwise form, ``parallel``/``chunkwise`` their recurrences, ``scan`` the
    step."""
    cell = make()
    assert isinstance(cell, rnnjax.Cell)
    assert isinstance(cell, rnnjax.ParallelFormCell)
    assert not isinstance(cell, rnnjax.FusedFormCell | rnnjax.LinearRecurrenceCell)
    assert kernels.has_parallel_form(cell)
    assert not kernels.has_parallel_form(rnnjax.min_gru(H))
    assert kernels.select(cell, "auto") is kernels.chunkwise_recurrence
    assert kernels.select(cell, "chunkwise") is kernels.chunkwise_recurrence
    assert kernels.select(cell, "parallel") is kernels.parallel_recurrence
    assert kernels.select(cell, "scan") is kernels.scan_recurrence
    assert kernels.select(rnnjax.min_gru(H), "auto") is kernels.associative_recurrence
    assert {"parallel", "chunkwise"} <= set(kernels.IMPLS)
    assert make() == make() and hash(make()) == hash(make())
    assert make() != make(forget_gate="exp")


@pytest.mark.parametrize("impl", ["fused", "associative", "cudnn"])
def test_other_impls_are_refused(impl):
    cell = make()
    params = cell.init(jax.random.key(0), I)
    with pytest.raises(ValueError, match=rf"impl.*{impl}"):
        rnnjax.unroll(
            cell, params, jnp.zeros((2, 4, I)), options=rnnjax.UnrollOptions(impl=impl)
        )


@pytest.mark.parametrize("impl", ["parallel", "chunkwise"])
def test_forms_refuse_other_cells(impl):
    for cell in (rnnjax.gru(H), rnnjax.min_gru(H)):
        with pytest.raises(ValueError, match=rf"impl.*{impl}.*{type(cell).__name__}"):
            kernels.select(cell, impl)


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_heads=3), "num_heads"),
        (dict(num_heads=0), "num_heads"),
        (dict(forget_gate="tanh"), "forget_gate"),
        (dict(chunk_size=0), "chunk_size"),
        (dict(chunk_size=2.0), "chunk_size"),
        (dict(eps=-1.0), "eps"),
        (dict(eps="small"), "eps"),
    ],
)
def test_bad_options_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rnnjax.mlstm(H, **{"num_heads": NH, **kwargs})


def test_rec_mask_is_refused():
    """No recurrent matrix product: a recurrent-dropout mask is refused, by the
    step, by every form and by a Layer with ``recurrent_dropout``."""
    cell = make()
    params = cell.init(jax.random.key(0), I)
    mask = jnp.ones((2, H))
    z = jnp.zeros((2, cell.input_width))
    with pytest.raises(ValueError, match="rec_mask"):
        cell.recur(params, cell.initial_carry((2,)), z, rec_mask=mask)
    for impl in ("scan", "parallel", "chunkwise", "auto"):
        with pytest.raises(ValueError, match="rec_mask"):
            rnnjax.unroll(
                cell,
                params,
                jnp.zeros((2, 4, I)),
                rec_mask=mask,
                options=rnnjax.UnrollOptions(impl=impl),
            )
    layer = rnnjax.Layer(cell, recurrent_dropout=0.5)
    with pytest.raises(ValueError, match=r"rec_mask.*recurrent_dropout"):
        layer.apply(
            layer.init(jax.random.key(0), I),
            jnp.zeros((2, 4, I)),
            key=jax.random.key(1),
            training=True,
        )


def test_wrong_params_and_carry_are_named():
    cell = make()
    params = cell.init(jax.random.key(0), I)
    with pytest.raises(ValueError, match="params"):
        rnnjax.unroll(cell, rnnjax.gru(H).init(jax.random.key(0), I), jnp.zeros((4, I)))
    with pytest.raises(ValueError, match="xs"):
        rnnjax.unroll(cell, params, jnp.zeros((2, 4, I + 1)))
    with pytest.raises(ValueError, match="carry"):
        rnnjax.unroll(cell, params, jnp.zeros((2, 4, I)), carry=cell.initial_carry())

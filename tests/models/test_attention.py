"""Soft attention and the Show, Attend and Tell decoder against float64 NumPy.

The references below are written from the papers' equations as restated in
``rnnjax/models/attention.py`` (Bahdanau et al. 2015; Luong et al. 2015; Xu et al.
2015),
not imported from rnnjax:

- bahdanau ``e_i = v^T tanh(W_q q + W_k a_i + b)``, luong_dot ``e_i = q^T a_i``,
  luong_general ``e_i = q^T W a_i`` with the parameter ``w (D, Q) = W^T``;
- the weights are a softmax over the unmasked annotations, zero elsewhere, and all
  zero (zero context) when a row has none;
- the decoder's LSTM has gate blocks ``i, f, g, o`` and input rows ``[x_t; z_t]``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax.models import attention
from tests.conftest import randomize

# Their time is compiling small programs: XLA's cheaper passes (conftest).
pytestmark = pytest.mark.usefixtures("fast_compile")

Q, D, A, N = 5, 3, 6, 7  # query, annotation, attention features; annotations
H, I, T = 5, 4, 4  # decoder hidden, input features, steps
TOL = 1e-5

SCORES = {
    "bahdanau": lambda: attention.bahdanau(A),
    "luong_dot": attention.luong_dot,
    "luong_general": attention.luong_general,
}
BATCH_SHAPES = [(), (3,), (2, 3)]
BATCH_IDS = ["unbatched", "B3", "B2x3"]


# ------------------------------------------------------------------ the reference


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def score_reference(name, p, q, a):
    """``e (*B, N)`` for ``q (*B, Q)``, ``a (*B, N, D)``, all float64."""
    if name == "bahdanau":
        pre = (q @ p["w_q"])[..., None, :] + a @ p["w_k"] + p["b"]
        return np.tanh(pre) @ p["v"]
    if name == "luong_dot":
        return np.einsum("...q,...nq->...n", q, a)
    W = p["w"].T  # (Q, D)
    return np.einsum("...q,qd,...nd->...n", q, W, a)


def softmax_reference(e, mask):
    """Softmax over unmasked positions; zero elsewhere; a row with none: zeros."""
    out = np.zeros_like(e)
    rows_e, rows_m = e.reshape(-1, e.shape[-1]), mask.reshape(-1, e.shape[-1])
    rows_out = out.reshape(-1, e.shape[-1])
    for r in range(rows_e.shape[0]):
        keep = rows_m[r]
        if keep.any():
            x = np.exp(rows_e[r, keep] - rows_e[r, keep].max())
            rows_out[r, keep] = x / x.sum()
    return rows_out.reshape(e.shape)


def to64(tree):
    return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


def random_mask(shape, seed, all_masked_row=True):
    """A boolean mask with some positions off; with a batch, the first row is all
    off (when ``all_masked_row``) and the last all on."""
    mask = np.random.default_rng(seed).random(shape) < 0.6
    mask = mask.reshape(-1, shape[-1])
    mask[-1] = True
    if all_masked_row and mask.shape[0] > 1:
        mask[0] = False
    return mask.reshape(shape)


def score_setup(name, batch_shape, seed=0):
    score = SCORES[name]()
    qsize = D if name == "luong_dot" else Q
    params = jax.eval_shape(lambda: score.init(jax.random.key(0), qsize, D))
    params = randomize(params, seed=seed)
    rng = np.random.default_rng(seed + 1)
    q = rng.standard_normal((*batch_shape, qsize)).astype(np.float32)
    a = rng.standard_normal((*batch_shape, N, D)).astype(np.float32)
    return score, params, jnp.asarray(q), jnp.asarray(a)


def close(actual, expected, what, tol=TOL):
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    np.testing.assert_allclose(
        np.asarray(actual, np.float64), expected, rtol=tol, atol=tol, err_msg=what
    )


# ------------------------------------------------------------------------- scores


@pytest.mark.parametrize("masking", ["none", "mask"])
@pytest.mark.parametrize("batch_shape", BATCH_SHAPES, ids=BATCH_IDS)
@pytest.mark.parametrize("name", list(SCORES))
def test_score_and_attend_match_reference(name, batch_shape, masking):
    score, params, q, a = score_setup(name, batch_shape)
    p64, q64, a64 = to64(params), to64(q), to64(a)
    mask = None if masking == "none" else random_mask((*batch_shape, N), seed=3)
    e_ref = score_reference(name, p64, q64, a64)
    keys = score.keys(params, a)
    close(score.score(params, q, keys), e_ref, "scores")

    w_ref = softmax_reference(
        e_ref, np.ones(e_ref.shape, bool) if mask is None else mask
    )
    ctx_ref = np.einsum("...n,...nd->...d", w_ref, a64)
    for precomputed in (None, keys):
        ctx, w = score.attend(params, q, a, mask, keys=precomputed)
        close(w, w_ref, "weights")
        close(ctx, ctx_ref, "context")
    ctx, w = attention.attend(score, params, q, a, mask)
    close(ctx, ctx_ref, "context (attend)")
    if mask is not None:
        assert np.all(np.asarray(w)[~mask] == 0.0)  # exactly zero


def test_all_masked_row_is_zero_and_gradients_finite():
    score, params, q, a = score_setup("bahdanau", (3,))
    mask = jnp.asarray(np.array([[False] * N, [True] * N, [True, False] * 3 + [True]]))

    def loss(params, q, a):
        ctx, w = score.attend(params, q, a, mask)
        return jnp.sum(ctx**2) + jnp.sum(w**2)

    ctx, w = score.attend(params, q, a, mask)
    assert np.all(np.asarray(ctx[0]) == 0.0) and np.all(np.asarray(w[0]) == 0.0)
    np.testing.assert_allclose(np.asarray(w[1:]).sum(-1), 1.0, rtol=1e-6)
    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(params, q, a)
    for g in jax.tree.leaves(grads):
        assert np.all(np.isfinite(np.asarray(g)))
    # Nothing flows to the all-masked row's query or annotations.
    assert np.all(np.asarray(grads[1][0]) == 0.0)
    assert np.all(np.asarray(grads[2][0]) == 0.0)


def test_masked_softmax_extreme_scores():
    scores = jnp.asarray([[1e4, -1e4, 0.0], [-1e30, 5.0, 3e38]], jnp.float32)
    mask = jnp.asarray([[False, True, True], [True, True, False]])
    w = attention.masked_softmax(scores, mask)
    assert np.all(np.isfinite(np.asarray(w)))
    np.testing.assert_allclose(np.asarray(w), [[0, 0, 1], [0, 1, 0]], atol=1e-6)
    g = jax.jit(jax.grad(lambda s: jnp.sum(attention.masked_softmax(s, mask) ** 2)))(
        scores
    )
    assert np.all(np.isfinite(np.asarray(g)))


def test_score_errors():
    score, params, q, a = score_setup("bahdanau", (3,))
    with pytest.raises(ValueError, match="query"):
        score.attend(params, q[:2], a)
    with pytest.raises(ValueError, match="mask"):
        score.attend(params, q, a, jnp.ones((3, N + 1), bool))
    with pytest.raises(ValueError, match="query: expected 5 features"):
        score.attend(params, a[..., 0, :], a)
    with pytest.raises(ValueError, match="annotations: expected 3 features"):
        score.attend(params, q, jnp.ones((3, N, D + 1)))
    dot, dot_params, q, a = score_setup("luong_dot", (3,))
    with pytest.raises(ValueError, match="annotations: expected 3 features"):
        dot.attend(dot_params, q, jnp.ones((3, N, D + 1)))
    with pytest.raises(ValueError, match="luong_dot"):
        attention.luong_dot().init(jax.random.key(0), Q, D)
    with pytest.raises(ValueError, match="attention_size"):
        attention.bahdanau(0)


# ------------------------------------------------------------------------ decoder


def decoder_reference(attn, gate, p, a, xs, mask):
    """Xu et al. 2015 (soft attention), one step at a time, float64."""
    m = mask.astype(np.float64)[..., None]
    mean = (a * m).sum(-2) / np.maximum(m.sum(-2), 1.0)
    c = np.tanh(mean @ p["init_c"]["w"] + p["init_c"]["b"])
    h = np.tanh(mean @ p["init_h"]["w"] + p["init_h"]["b"])
    lp = p["lstm"]
    outputs, alphas = [], []
    for t in range(xs.shape[-2]):
        alpha = softmax_reference(score_reference(attn, p["attention"], h, a), mask)
        z = np.einsum("...n,...nd->...d", alpha, a)
        if gate:
            beta = sigmoid(h @ p["beta"]["w"] + p["beta"]["b"])
            z = beta[..., None] * z
        inp = np.concatenate([xs[..., t, :], z], -1)
        i, f, g, o = np.split(inp @ lp["w_x"] + h @ lp["w_h"] + lp["b"], 4, -1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        outputs.append(h)
        alphas.append(alpha)
    return np.stack(outputs, -2), np.stack(alphas, -2)


def decoder_setup(attn, gate, batch_shape, seed=0):
    hidden = D if attn == "luong_dot" else H
    dec = attention.attention_decoder(hidden, D, I, attn, gate)
    params = randomize(jax.eval_shape(lambda: dec.init(jax.random.key(0))), seed)
    rng = np.random.default_rng(seed + 1)
    a = jnp.asarray(rng.standard_normal((*batch_shape, N, D)), jnp.float32)
    xs = jnp.asarray(rng.standard_normal((*batch_shape, T, I)), jnp.float32)
    return dec, params, a, xs


DECODERS = [(attn, gate) for attn in attention.ATTENTIONS for gate in (True, False)]


@pytest.mark.parametrize("batch_shape", [(), (2,)], ids=["unbatched", "B2"])
@pytest.mark.parametrize(("attn", "gate"), DECODERS)
def test_decoder_matches_reference(attn, gate, batch_shape):
    dec, params, a, xs = decoder_setup(attn, gate, batch_shape)
    mask = random_mask((*batch_shape, N), seed=5, all_masked_row=False)
    outputs, alphas = dec.decode(params, a, xs, jnp.asarray(mask))
    ref_out, ref_alpha = decoder_reference(
        attn, gate, to64(params), to64(a), to64(xs), mask
    )
    close(outputs, ref_out, "outputs")
    close(alphas, ref_alpha, "alphas")
    # Alphas sum to one over the unmasked annotations and are zero elsewhere.
    np.testing.assert_allclose(np.asarray(alphas, np.float64).sum(-1), 1.0, rtol=1e-6)
    assert np.all(np.moveaxis(np.asarray(alphas), -2, 0)[:, ~mask] == 0.0)
    if batch_shape:
        return
    # Without a mask: every annotation.
    outputs, alphas = dec.decode(params, a, xs)
    ones = np.ones(mask.shape, bool)
    ref_out, ref_alpha = decoder_reference(
        attn, gate, to64(params), to64(a), to64(xs), ones
    )
    close(outputs, ref_out, "outputs (no mask)")
    close(alphas, ref_alpha, "alphas (no mask)")


def test_step_by_step_equals_decode():
    dec, params, a, xs = decoder_setup("bahdanau", True, (2,))
    mask = jnp.asarray(random_mask((2, N), seed=1, all_masked_row=False))
    outputs, alphas = dec.decode(params, a, xs, mask)
    carry, keys = dec.initial_carry(params, a, mask), dec.keys(params, a)
    for t in range(T):
        carry, (h, alpha) = dec.step(params, carry, xs[:, t], a, keys, mask)
        close(h, np.asarray(outputs[:, t], np.float64), f"h at {t}")
        close(alpha, np.asarray(alphas[:, t], np.float64), f"alpha at {t}")


def test_keys_are_projected_once_per_sequence():
    """No product with ``w_k (D, A)`` inside the scan's step."""
    dec = attention.attention_decoder(H, D, I, attention_size=A)
    params = jax.eval_shape(dec.init, jax.random.key(0))
    a, xs = jnp.ones((2, N, D)), jnp.ones((2, T, I))
    jaxpr = jax.make_jaxpr(dec.decode)(params, a, xs).jaxpr
    (scan,) = [e for e in jaxpr.eqns if e.primitive.name == "scan"]
    body = scan.params["jaxpr"].jaxpr
    products = [e for e in body.eqns if e.primitive.name == "dot_general"]
    shapes = {tuple(v.aval.shape) for e in products for v in e.invars}
    assert products and (D, A) not in shapes, shapes
    assert (D, A) in {
        tuple(v.aval.shape)
        for e in jaxpr.eqns
        if e.primitive.name == "dot_general"
        for v in e.invars
    }


def test_seq_lengths_and_penalty():
    dec, params, a, xs = decoder_setup("luong_general", True, (3,))
    mask = random_mask((3, N), seed=2)  # row 0 all masked
    lengths = jnp.asarray([4, 2, 0], jnp.int32)
    outputs, alphas = dec.decode(params, a, xs, jnp.asarray(mask), lengths)
    full_out, full_alpha = dec.decode(params, a, xs, jnp.asarray(mask))
    for b, n in enumerate([4, 2, 0]):
        close(outputs[b, :n], np.asarray(full_out[b, :n], np.float64), "prefix")
        close(alphas[b, :n], np.asarray(full_alpha[b, :n], np.float64), "prefix")
        assert np.all(np.asarray(outputs[b, n:]) == 0.0)
        assert np.all(np.asarray(alphas[b, n:]) == 0.0)
    assert np.all(np.asarray(alphas[0]) == 0.0)  # all-masked row: zero weights

    def penalty_reference(alphas, mask, lengths, lam):
        out = []
        for b in range(alphas.shape[0]):
            s = alphas[b, : lengths[b]].sum(0)
            out.append(lam * sum((1.0 - s[i]) ** 2 for i in range(N) if mask[b, i]))
        return np.array(out)

    lam = 0.7
    expected = penalty_reference(to64(full_alpha), mask, [4, 2, 0], lam)
    got = attention.doubly_stochastic_penalty(
        full_alpha, jnp.asarray(mask), lengths, lam=lam
    )
    close(got, expected, "penalty")
    # decode zeroes the steps past each length, so lengths are optional here.
    got = attention.doubly_stochastic_penalty(alphas, jnp.asarray(mask), lam=lam)
    close(got, expected, "penalty of decode's alphas")
    unmasked = attention.doubly_stochastic_penalty(full_alpha)
    close(
        unmasked,
        penalty_reference(to64(full_alpha), ~np.zeros_like(mask), [T] * 3, 1.0),
        "no mask",
    )


def decoder_loss(dec, mask, lengths):
    def loss(params, a, xs):
        outputs, alphas = dec.decode(params, a, xs, mask, lengths)
        penalty = attention.doubly_stochastic_penalty(alphas, mask, lam=0.5)
        return jnp.sum(jnp.sin(outputs)) + jnp.sum(penalty)

    return loss


@pytest.mark.parametrize("attn", ["luong_dot", "luong_general"])
def test_gradients_finite(attn):
    dec, params, a, xs = decoder_setup(attn, True, (3,))
    mask = jnp.asarray(random_mask((3, N), seed=2))  # row 0 all masked
    loss = decoder_loss(dec, mask, jnp.asarray([4, 3, 1], jnp.int32))
    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(params, a, xs)
    for g in jax.tree.leaves(grads):
        assert np.all(np.isfinite(np.asarray(g)))


def test_finite_difference():
    """Bahdanau decoder in float64 (finite gradients there too): the gradient
    along a random direction of every argument against a central difference."""
    dec, params, a, xs = decoder_setup("bahdanau", True, (3,))
    mask = jnp.asarray(random_mask((3, N), seed=2))  # row 0 all masked
    loss = jax.jit(decoder_loss(dec, mask, jnp.asarray([4, 3, 1], jnp.int32)))
    rng = np.random.default_rng(9)
    with jax.enable_x64(True):
        args = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), (params, a, xs))
        direction = jax.tree.map(
            lambda x: jnp.asarray(rng.standard_normal(x.shape)), args
        )
        grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(*args)
        eps = 1e-5
        shifted = lambda s: jax.tree.map(lambda x, d: x + s * d, args, direction)
        numeric = (loss(*shifted(eps)) - loss(*shifted(-eps))) / (2 * eps)
        leaves = jax.tree.leaves(grads)
        analytic = sum(
            jnp.vdot(g, d)
            for g, d in zip(leaves, jax.tree.leaves(direction), strict=True)
        )
    for g in leaves:
        assert g.dtype == np.float64 and np.all(np.isfinite(np.asarray(g)))
    np.testing.assert_allclose(float(numeric), float(analytic), rtol=1e-7)


def test_jit_matches_and_does_not_recompile():
    dec, params, a, xs = decoder_setup("bahdanau", True, (2,))
    mask = jnp.asarray(random_mask((2, N), seed=1))
    decode = jax.jit(dec.decode)
    out, alphas = decode(params, a, xs, mask)
    eager_out, eager_alphas = dec.decode(params, a, xs, mask)
    close(out, np.asarray(eager_out, np.float64), "jit outputs")
    close(alphas, np.asarray(eager_alphas, np.float64), "jit alphas")
    decode(randomize(params, seed=4), a + 1.0, xs * 2.0, ~mask)
    assert decode._cache_size() == 1


def test_init_and_errors():
    dec = attention.attention_decoder(H, D, I)
    params = jax.eval_shape(dec.init, jax.random.key(0))  # errors come before compute
    shapes = jax.tree.map(jnp.shape, params)
    assert shapes["lstm"]["w_x"] == (I + D, 4 * H)
    assert shapes["attention"]["w_k"] == (D, H)
    assert shapes["beta"] == {"w": (H,), "b": ()}
    no_gate = attention.attention_decoder(H, D, I, gate=False)
    assert "beta" not in jax.eval_shape(no_gate.init, jax.random.key(0))
    a, xs = jnp.ones((2, N, D)), jnp.ones((2, T, I))
    with pytest.raises(ValueError, match="annotations"):
        dec.decode(params, jnp.ones((2, N, D + 1)), xs)
    with pytest.raises(ValueError, match="xs"):
        dec.decode(params, a, jnp.ones((3, T, I)))
    with pytest.raises(ValueError, match="mask"):
        dec.decode(params, a, xs, jnp.ones((2, N + 1), bool))
    with pytest.raises(ValueError, match="seq_lengths"):
        dec.decode(params, a, xs, None, jnp.ones((3,), jnp.int32))
    with pytest.raises(ValueError, match="attention"):
        attention.attention_decoder(H, D, I, "luong")
    with pytest.raises(ValueError, match="luong_dot"):
        attention.attention_decoder(H, D, I, "luong_dot")

"""Masked losses against float64 NumPy references written here."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax import train

B, T, V = 3, 5, 7


def np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def np_masked_mean(values, mask):
    mask = mask.astype(bool)
    count = int(mask.sum())
    return (values[mask].sum() / count if count else 0.0), count


def lengths_mask():
    return np.arange(T)[None, :] < np.array([5, 2, 0])[:, None]


MASKS = {
    "none": lambda: np.ones((B, T), bool),
    "lengths": lengths_mask,
    "random": lambda: np.random.default_rng(1).random((B, T)) < 0.5,
    "all_masked": lambda: np.zeros((B, T), bool),
}


def check(got, want, tol=1e-5):
    loss, count = got
    want_loss, want_count = want
    assert int(count) == want_count
    assert np.isfinite(float(loss))
    np.testing.assert_allclose(float(loss), want_loss, rtol=tol, atol=1e-6)


def pass_mask(name, mask):
    return None if name == "none" else jnp.asarray(mask)


@pytest.mark.parametrize("name", MASKS)
def test_softmax_cross_entropy(rng, name):
    mask = MASKS[name]()
    logits = 3 * rng.standard_normal((B, T, V))
    targets = rng.integers(0, V, (B, T))
    nll = -np.take_along_axis(np_log_softmax(logits), targets[..., None], -1)[..., 0]
    got = train.softmax_cross_entropy(
        jnp.asarray(logits, jnp.float32), jnp.asarray(targets), pass_mask(name, mask)
    )
    check(got, np_masked_mean(nll, mask))


@pytest.mark.parametrize("name", MASKS)
def test_accuracy(rng, name):
    mask = MASKS[name]()
    logits = rng.standard_normal((B, T, V))
    targets = rng.integers(0, V, (B, T))
    targets[0, :2] = logits[0, :2].argmax(-1)  # some hits
    hits = (logits.argmax(-1) == targets).astype(float)
    mask_ = pass_mask(name, mask)
    got = train.accuracy(jnp.asarray(logits), jnp.asarray(targets), mask_)
    check(got, np_masked_mean(hits, mask))


@pytest.mark.parametrize("name", MASKS)
def test_mse(rng, name):
    mask = MASKS[name]()
    preds, targets = rng.standard_normal((2, B, T, 4))
    err = ((preds - targets) ** 2).mean(-1)
    got = train.mse(jnp.asarray(preds), jnp.asarray(targets), pass_mask(name, mask))
    check(got, np_masked_mean(err, mask))


@pytest.mark.parametrize("name", ["none", "lengths", "all_masked"])
def test_last_step_mse(rng, name):
    mask = MASKS[name]()
    preds = rng.standard_normal((B, T, 4))
    targets = rng.standard_normal((B, 4))
    lengths = mask.sum(1)
    errs = [
        ((preds[b, lengths[b] - 1] - targets[b]) ** 2).mean()
        for b in range(B)
        if lengths[b]
    ]
    want = (float(np.mean(errs)) if errs else 0.0, len(errs))
    got = train.last_step_mse(
        jnp.asarray(preds), jnp.asarray(targets), pass_mask(name, mask)
    )
    check(got, want)


@pytest.mark.parametrize("name", MASKS)
def test_bernoulli_nll(rng, name):
    mask = MASKS[name]()
    logits = 4 * rng.standard_normal((B, T, 88))
    targets = (rng.random((B, T, 88)) < 0.1).astype(float)
    p = 1 / (1 + np.exp(-logits))
    nll = -(targets * np.log(p) + (1 - targets) * np.log1p(-p)).sum(-1)
    got = train.bernoulli_nll(
        jnp.asarray(logits, jnp.float32),
        jnp.asarray(targets, jnp.float32),
        pass_mask(name, mask),
    )
    check(got, np_masked_mean(nll, mask))


def test_stable_for_extreme_logits():
    logits = jnp.array([[[1e4, -1e4, 0.0]]])
    loss, _ = train.softmax_cross_entropy(logits, jnp.array([[1]]))
    np.testing.assert_allclose(float(loss), 2e4, rtol=1e-6)
    loss, _ = train.bernoulli_nll(logits, jnp.array([[[0.0, 1.0, 1.0]]]))
    np.testing.assert_allclose(float(loss), 2e4 + np.log(2), rtol=1e-6)


def test_all_masked_gradient_is_zero_and_finite(rng):
    logits = jnp.asarray(rng.standard_normal((B, T, V)), jnp.float32)
    targets = jnp.zeros((B, T), jnp.int32)
    mask = jnp.zeros((B, T), bool)
    grad = jax.grad(lambda l: train.softmax_cross_entropy(l, targets, mask)[0])(logits)
    assert np.all(np.asarray(grad) == 0)


def test_lengths_mask():
    got = train.lengths_mask(jnp.array([5, 2, 0]), T)
    np.testing.assert_array_equal(np.asarray(got), lengths_mask())


def test_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match="targets: expected shape"):
        train.softmax_cross_entropy(jnp.zeros((B, T, V)), jnp.zeros((B, T + 1), int))
    with pytest.raises(ValueError, match="mask: expected shape"):
        train.mse(jnp.zeros((B, T, 2)), jnp.zeros((B, T, 2)), jnp.ones((B,)))

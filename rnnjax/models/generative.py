"""Generative recurrent networks with Gaussian latent variables: the VRNN (Chung et
al. 2015, "A Recurrent Latent Variable Model for Sequential Data") and STORN (Bayer
& Osendorfer 2014, "Learning Stochastic Recurrent Networks").

Shapes (the package legend, `rnnjax`): ``B`` batch, ``T`` time, ``X`` data
features, ``J`` latent features, ``F`` feature (MLP) width, ``H`` the cell's output
(``h_t``) size.

Every MLP below is ``depth`` layers ``relu(u W + b)`` of width ``F``; a Gaussian
head maps the MLP's output to ``mu = u W_mu + b_mu`` and
``sigma = softplus(u W_s + b_s) + min_std``. ``[a, b]`` is concatenation.

VRNN, for ``t = 1..T`` with ``h_0 = 0`` (the cell's zero carry):

    prior    p(z_t | h_{t-1})      = N(mu_0,t, sigma_0,t^2), MLP of h_{t-1}
    encoder  q(z_t | x_t, h_{t-1}) = N(mu_z,t, sigma_z,t^2), MLP of [phi_x(x_t),h_{t-1}]
    z_t      = mu_z,t + sigma_z,t * eps_t                     (reparameterised)
    decoder  p(x_t | z_t, h_{t-1}), MLP of [phi_z(z_t), h_{t-1}]
    h_t      = f([phi_x(x_t), phi_z(z_t)], h_{t-1})           (an rnnjax cell)

STORN (``prior="fixed"``, `storn`) uses the same pieces with three changes:

    prior    p(z_t) = N(0, I)                                 (no parameters)
    h_t      = f([phi_x(x_{t-1}), phi_z(z_t)], h_{t-1})       (x_0 = 0)
    decoder  p(x_t | z_t, h_t)  from  dec([phi_z(z_t), h_t])

so the generative recurrence reads the previous observation and the current latent,
as in the paper (``h_t = f(W_x x_{t-1} + W_z z_t + W_h h_{t-1})``,
``x_t ~ p(x_t | h_t)``). Simplifications against the paper: the recognition model is
not a separate RNN over ``x_{1:t}`` but the shared encoder
``q(z_t | x_t, h_{t-1})``, whose ``h_{t-1}`` (the generative state) has already
read ``x_{1:t-1}``; the decoder also sees ``phi_z(z_t)`` directly (a skip from the
latent, which ``h_t`` contains anyway); inputs and latents pass through the MLP
feature extractors ``phi_x``, ``phi_z`` instead of entering the cell linearly.

Output distributions: ``"gaussian"`` (diagonal covariance, ``mu`` and ``sigma``
heads) and ``"bernoulli"`` (logits ``u W + b``; ``log p = x log s(l) + (1 - x)
log s(-l)``, exact for ``x`` in {0, 1}).

The ELBO per sequence is ``sum_{t < len} (log p(x_t | .) - KL(q(z_t) || p(z_t)))``
with the Gaussian KL in closed form per step:

    KL = sum_j log(s_p / s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2

Noise: `GenerativeRNN.elbo` draws ``eps = jax.random.normal(key, (*B, T, J))``
(or takes ``eps``); `GenerativeRNN.sample` splits ``key`` into ``(k_z, k_x)``
and draws ``jax.random.normal(k_z, (*B, T, J))`` and, for the output, either
``jax.random.normal(k_x, (*B, T, X))`` or ``jax.random.uniform(k_x, (*B, T, X))``
(``x = u < sigmoid(l)``).

Parameters: a dict ``{"phi_x", "phi_z", "enc", "dec", "prior", "cell"}``; each MLP
is a dict with ``"layers"`` (a list of ``{"w", "b"}``) and its heads
(``"mu"``, ``"sigma"`` or ``"logits"``, each ``{"w", "b"}``); ``"prior"`` is ``{}``
for STORN; ``"cell"`` is the cell's own params for inputs of size ``2F``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax.cells.base import (
    Cell,
    check_key,
    check_positive_int,
    dense,
    dense_params,
    expand,
    output_size,
)
from rnnjax.cells.gru import gru
from rnnjax.cells.lstm import lstm

Array = jax.Array
LOG_2PI = 1.8378770664093453

# ---------------------------------------------------------------- distributions


def gaussian_kl(mu_q, sigma_q, mu_p, sigma_p) -> Array:
    """``KL(N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2))`` summed over the last axis."""
    var_ratio = jnp.square(sigma_q / sigma_p)
    mean_term = jnp.square((mu_q - mu_p) / sigma_p)
    return 0.5 * jnp.sum(var_ratio + mean_term - 1.0 - jnp.log(var_ratio), axis=-1)


def gaussian_log_prob(x, mu, sigma) -> Array:
    """``log N(x; mu, diag sigma^2)`` summed over the last axis."""
    return jnp.sum(
        -0.5 * LOG_2PI - jnp.log(sigma) - 0.5 * jnp.square((x - mu) / sigma), axis=-1
    )


def bernoulli_log_prob(x, logits) -> Array:
    """``sum_j x_j log s(l_j) + (1 - x_j) log s(-l_j)`` over the last axis."""
    return jnp.sum(
        x * jax.nn.log_sigmoid(logits) + (1.0 - x) * jax.nn.log_sigmoid(-logits),
        axis=-1,
    )


# ------------------------------------------------------------------------- MLPs


def _mlp_init(key, n_in, width, depth, heads: dict[str, int]):
    keys = jax.random.split(key, depth + len(heads))
    layers, size = [], n_in
    for i in range(depth):
        layers.append(dense_params(keys[i], size, width))
        size = width
    out = {"layers": layers}
    for j, (name, n_out) in enumerate(sorted(heads.items())):
        out[name] = dense_params(keys[depth + j], size, n_out)
    return out


def _mlp_body(p, x):
    for layer in p["layers"]:
        x = jax.nn.relu(dense(layer, x))
    return x


# ----------------------------------------------------------------------- the model


@dataclasses.dataclass(frozen=True)
class GenerativeRNN:
    """A VRNN or STORN; build it with `vrnn` or `storn`.

    Attributes:
      x_size: ``X``, ``J``.
      z_size: as ``x_size``.
      cell: the rnnjax cell of the recurrence (input size ``2F``).
      feature_size: ``F``, the width of every MLP.
      depth: relu layers per MLP.
      output: ``"gaussian"`` or ``"bernoulli"``.
      prior: ``"learned"`` (VRNN) or ``"fixed"`` (STORN; see the module docstring).
      min_std: added to every softplus standard deviation.
    """

    x_size: int
    z_size: int
    cell: Any
    feature_size: int
    depth: int = 1
    output: str = "gaussian"
    prior: str = "learned"
    min_std: float = 1e-4

    def __post_init__(self):
        check_positive_int(self.x_size, "x_size")
        check_positive_int(self.z_size, "z_size")
        check_positive_int(self.feature_size, "feature_size")
        check_positive_int(self.depth, "depth")
        if self.output not in ("gaussian", "bernoulli"):
            raise ValueError(
                f"output: expected 'gaussian' or 'bernoulli', got {self.output!r}"
            )
        if self.prior not in ("learned", "fixed"):
            raise ValueError(
                f"prior: expected 'learned' or 'fixed', got {self.prior!r}"
            )

    @property
    def hidden_size(self) -> int:
        """``H``, the size of ``h_t`` that the prior, encoder and decoder read."""
        return output_size(self.cell)

    def _out_heads(self):
        if self.output == "gaussian":
            return {"mu": self.x_size, "sigma": self.x_size}
        return {"logits": self.x_size}

    def init(self, key) -> dict:
        """Fresh parameters (Glorot-uniform weights, zero biases; the cell's own
        initialisers for ``"cell"``)."""
        check_key(key, "key")
        F, J, H, d = self.feature_size, self.z_size, self.hidden_size, self.depth
        k = jax.random.split(key, 6)
        gauss = {"mu": J, "sigma": J}
        return {
            "phi_x": _mlp_init(k[0], self.x_size, F, d, {}),
            "phi_z": _mlp_init(k[1], J, F, d, {}),
            "enc": _mlp_init(k[2], F + H, F, d, gauss),
            "dec": _mlp_init(k[3], F + H, F, d, self._out_heads()),
            "prior": _mlp_init(k[4], H, F, d, gauss) if self.prior == "learned" else {},
            "cell": self.cell.init(k[5], 2 * F),
        }

    # ------------------------------------------------------------------- pieces

    def _gauss(self, p, u):
        mu = dense(p["mu"], u)
        sigma = jax.nn.softplus(dense(p["sigma"], u)) + self.min_std
        return mu, sigma

    def prior_dist(self, params, h):
        """``(mu_0, sigma_0)``, each ``(*B, J)``, of ``p(z_t | h_{t-1})``."""
        if self.prior == "fixed":
            zeros = jnp.zeros((*h.shape[:-1], self.z_size), h.dtype)
            return zeros, jnp.ones_like(zeros)
        return self._gauss(params["prior"], _mlp_body(params["prior"], h))

    def encoder_dist(self, params, fx, h):
        """``(mu_z, sigma_z)`` of ``q(z_t | x_t, h_{t-1})`` from ``phi_x(x_t)``."""
        u = _mlp_body(params["enc"], jnp.concatenate([fx, h], axis=-1))
        return self._gauss(params["enc"], u)

    def decoder_out(self, params, fz, h):
        """``(mu, sigma)`` (gaussian) or ``(logits,)`` (bernoulli) of ``p(x_t | .)``."""
        p = params["dec"]
        u = _mlp_body(p, jnp.concatenate([fz, h], axis=-1))
        if self.output == "gaussian":
            return self._gauss(p, u)
        return (dense(p["logits"], u),)

    def log_lik(self, params, x, fz, h):
        out = self.decoder_out(params, fz, h)
        if self.output == "gaussian":
            return gaussian_log_prob(x, *out)
        return bernoulli_log_prob(x, *out)

    def _recur(self, params, carry, fx, fz):
        inp = jnp.concatenate([fx, fz], axis=-1)
        return self.cell.recur(
            params["cell"], carry, self.cell.project(params["cell"], inp)
        )

    def _initial(self, batch_shape, dtype):
        carry = self.cell.initial_carry(tuple(batch_shape), dtype)
        return carry, jnp.zeros((*tuple(batch_shape), self.hidden_size), dtype)

    # --------------------------------------------------------------------- ELBO

    def elbo(self, params, xs, key=None, seq_lengths=None, *, eps=None):
        """The ELBO of each sequence and its per-step terms.

        Args:
          params: from `init`.
          xs: ``(*B, T, X)``.
          key: the PRNG key of the reparameterisation noise
            ``eps = jax.random.normal(key, (*B, T, J))``.
          seq_lengths: ``(*B,)`` int; steps ``t >= len`` contribute exactly 0.
          eps: ``(*B, T, J)``, used instead of drawing from ``key``.

        Returns:
          ``(elbo (*B,), {"kl": (*B, T), "log_lik": (*B, T)})``, the per-step
          terms already masked.
        """
        xs = self._check_xs(xs)
        batch, T = xs.shape[:-2], xs.shape[-2]
        if eps is None:
            check_key(key, "key")
            eps = jax.random.normal(key, (*batch, T, self.z_size), xs.dtype)
        elif tuple(jnp.shape(eps)) != (*batch, T, self.z_size):
            raise ValueError(
                f"eps: expected shape {(*batch, T, self.z_size)}, got {jnp.shape(eps)}"
            )
        fxs = _mlp_body(params["phi_x"], xs)  # hoisted over all steps
        if self.prior == "fixed":  # phi_x(x_{t-1}), x_0 = 0
            f0 = _mlp_body(params["phi_x"], jnp.zeros_like(xs[..., :1, :]))
            fprev = jnp.concatenate([f0, fxs[..., :-1, :]], axis=-2)
        else:
            fprev = fxs
        seq = [jnp.moveaxis(a, -2, 0) for a in (xs, fxs, fprev, eps)]

        def step(state, inputs):
            carry, h = state
            x, fx, fp, e = inputs
            mu_q, s_q = self.encoder_dist(params, fx, h)
            mu_p, s_p = self.prior_dist(params, h)
            z = mu_q + s_q * e
            fz = _mlp_body(params["phi_z"], z)
            kl = gaussian_kl(mu_q, s_q, mu_p, s_p)
            if self.prior == "fixed":
                carry, h_new = self._recur(params, carry, fp, fz)
                ll = self.log_lik(params, x, fz, h_new)
            else:
                ll = self.log_lik(params, x, fz, h)
                carry, h_new = self._recur(params, carry, fx, fz)
            return (carry, h_new), (kl, ll)

        _, (kl, ll) = lax.scan(step, self._initial(batch, xs.dtype), seq)
        kl, ll = jnp.moveaxis(kl, 0, -1), jnp.moveaxis(ll, 0, -1)
        if seq_lengths is not None:
            mask = self._mask(seq_lengths, batch, T)
            kl = jnp.where(mask, kl, jnp.zeros_like(kl))
            ll = jnp.where(mask, ll, jnp.zeros_like(ll))
        return jnp.sum(ll - kl, axis=-1), {"kl": kl, "log_lik": ll}

    def _check_xs(self, xs):
        xs = jnp.asarray(xs)
        if xs.ndim < 2 or xs.shape[-1] != self.x_size:
            raise ValueError(
                f"xs: expected shape (*B, T, {self.x_size}), got {xs.shape}"
            )
        if not jnp.issubdtype(xs.dtype, jnp.floating):
            xs = xs.astype(jnp.float32)
        return xs

    @staticmethod
    def _mask(seq_lengths, batch, T):
        lengths = jnp.asarray(seq_lengths)
        if tuple(lengths.shape) != tuple(batch):
            raise ValueError(
                f"seq_lengths: expected shape {tuple(batch)}, got {lengths.shape}"
            )
        return expand(jnp.arange(T), lengths.ndim + 1) < lengths[..., None]

    # ------------------------------------------------------------------ sampling

    def sample(self, params, key, batch_shape=(), num_steps: int = 1):
        """Ancestral samples ``xs (*B, T, X)`` from the prior (see the module
        docstring for the noise); Bernoulli samples are 0.0 / 1.0."""
        check_key(key, "key")
        check_positive_int(num_steps, "num_steps")
        batch = tuple(batch_shape)
        kz, kx = jax.random.split(key)
        ez = jax.random.normal(kz, (*batch, num_steps, self.z_size))
        shape_x = (*batch, num_steps, self.x_size)
        if self.output == "gaussian":
            ex = jax.random.normal(kx, shape_x)
        else:
            ex = jax.random.uniform(kx, shape_x)
        seq = [jnp.moveaxis(a, -2, 0) for a in (ez, ex)]

        def draw_x(fz, h, e):
            out = self.decoder_out(params, fz, h)
            if self.output == "gaussian":
                return out[0] + out[1] * e
            return (e < jax.nn.sigmoid(out[0])).astype(e.dtype)

        def step(state, inputs):
            carry, h, x_prev = state
            e_z, e_x = inputs
            mu_p, s_p = self.prior_dist(params, h)
            fz = _mlp_body(params["phi_z"], mu_p + s_p * e_z)
            if self.prior == "fixed":
                fp = _mlp_body(params["phi_x"], x_prev)
                carry, h = self._recur(params, carry, fp, fz)
                x = draw_x(fz, h, e_x)
            else:
                x = draw_x(fz, h, e_x)
                carry, h = self._recur(params, carry, _mlp_body(params["phi_x"], x), fz)
            return (carry, h, x), x

        carry, h = self._initial(batch, jnp.float32)
        x0 = jnp.zeros((*batch, self.x_size), jnp.float32)
        _, xs = lax.scan(step, (carry, h, x0), seq)
        return jnp.moveaxis(xs, 0, -2)


def _make_cell(cell, hidden_size):
    if cell == "gru":
        return gru(hidden_size)
    if cell == "lstm":
        return lstm(hidden_size)
    if not isinstance(cell, Cell):
        raise ValueError(
            f"cell: expected 'gru', 'lstm' or an rnnjax cell, got {cell!r}"
        )
    return cell


def vrnn(
    x_size: int,
    z_size: int,
    hidden_size: int,
    *,
    feature_size: int | None = None,
    depth: int = 1,
    cell="gru",
    output: str = "gaussian",
    prior: str = "learned",
    min_std: float = 1e-4,
) -> GenerativeRNN:
    """A VRNN (Chung et al. 2015; equations in the module docstring).

    Args:
      x_size: ``X``; z_size: ``J``; hidden_size: ``H`` of the recurrent cell.
      feature_size: ``F``, width of every MLP (default ``hidden_size``).
      depth: relu layers per MLP.
      cell: ``"gru"`` (default), ``"lstm"``, or any rnnjax cell object (its
        ``hidden_size`` then wins over ``hidden_size``).
      output: ``"gaussian"`` (diagonal) or ``"bernoulli"`` (binary data).
      prior: ``"learned"`` (VRNN) or ``"fixed"`` (STORN, see `storn`).
      min_std: floor added to every standard deviation.
    """
    check_positive_int(hidden_size, "hidden_size")
    return GenerativeRNN(
        x_size,
        z_size,
        _make_cell(cell, hidden_size),
        hidden_size if feature_size is None else feature_size,
        depth=depth,
        output=output,
        prior=prior,
        min_std=min_std,
    )


def storn(x_size: int, z_size: int, hidden_size: int, **kwargs) -> GenerativeRNN:
    """STORN (Bayer & Osendorfer 2014): ``vrnn(..., prior="fixed")``, with the
    prior ``N(0, I)``, the recurrence on ``[phi_x(x_{t-1}), phi_z(z_t)]`` and the
    decoder on ``h_t`` (see the module docstring for the mapping)."""
    return vrnn(x_size, z_size, hidden_size, prior="fixed", **kwargs)

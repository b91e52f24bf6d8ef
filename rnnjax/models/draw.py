"""DRAW, the Deep Recurrent Attentive Writer (Gregor, Danihelka, Graves, Rezende &
Wierstra 2015, "DRAW: A Recurrent Neural Network For Image Generation").

Shapes (the package legend, `rnnjax`): ``B`` batch, ``T`` the number of steps
(glimpses), ``Xh`` x ``Xw`` the image (height, width), ``J`` latent features,
``H_enc`` and ``H_dec`` the encoder's and decoder's output sizes, ``Nr`` the read grid,
``Nw`` the write grid. ``W(h)`` is a linear map ``h W + b`` and ``[a, b]``
concatenation.

For ``t = 1..T``, with the canvas ``c_0 = 0``, ``h^dec_0 = 0`` and zero cell
carries (Sec. 2):

    x^_t     = x - sigmoid(c_{t-1})                        (the error image)
    r_t      = read(x, x^_t, h^dec_{t-1})
    h^enc_t  = RNN^enc(h^enc_{t-1}, [r_t, h^dec_{t-1}])     (an rnnjax cell)
    z_t      = mu_t + sigma_t * eps_t,  mu_t = W(h^enc_t),  sigma_t = exp(W(h^enc_t))
    h^dec_t  = RNN^dec(h^dec_{t-1}, z_t)                    (an rnnjax cell)
    c_t      = c_{t-1} + write(h^dec_t)

    L^x = -log D(x | c_T) = -sum_ij x log s(c_T) + (1 - x) log s(-c_T)
    L^z = sum_t sum_j 1/2 (mu_tj^2 + sigma_tj^2 - log sigma_tj^2) - 1/2
    bound = -(L^x + L^z)   (<= log p(x); exact D for binary x, cross-entropy else)

Without attention (Sec. 3.1) ``read = [x, x^]`` flattened (``2 Xh Xw``) and
``write = W(h^dec)`` reshaped to ``(Xh, Xw)``.

With attention (Sec. 3.2-3.3), an ``Nr x Nr`` grid of Gaussian filters from
``(g~x, g~y, log sigma^2, log delta~, log gamma) = W(h^dec)``. The paper numbers
pixels ``a = 1..Xw`` (``b = 1..Xh``), so ``g~ = 0`` is the image centre:

    gX = (Xw + 1)/2 (g~x + 1),   gY = (Xh + 1)/2 (g~y + 1)
    delta = (max(Xw, Xh) - 1) / (Nr - 1) * delta~         (Nr - 1 read as 1 if Nr = 1)
    mu^i_X = gX + (i - Nr/2 - 0.5) delta,   i = 1..Nr       (mu^j_Y likewise)
    F_X[i, a] = exp(-(a - mu^i_X)^2 / (2 sigma^2)) / (sum_a' exp(...) + 1e-8)
    read  = gamma [F_Y x F_X^T, F_Y x^ F_X^T]                (2 Nr^2 features)
    write = 1/gamma^ F^_Y^T w_t F^_X,  w_t = W(h^dec) reshaped to (Nw, Nw)

where the write has its own ``(g~x^, g~y^, log sigma^2^, log delta~^, log gamma^) =
W(h^dec)`` and ``Nw x Nw`` filters. `Glimpse` holds one attention's parameters
with the centre in array indices (``gX - 1``, ``gY - 1``, 0-based, as
``plt.imshow`` places pixels).

Noise: `DRAW.elbo` draws ``eps = jax.random.normal(key, (*B, T, J))`` (or
takes ``eps``); `DRAW.sample` draws ``z = jax.random.normal(key, (*B, T, J))``
(or takes ``z``) and runs the decoder alone.

Parameters: a dict ``{"encoder", "decoder", "q", "read", "write", "write_attn"}``:
the two cells' own params (encoder inputs ``R + H_dec`` with ``R = 2 Nr^2`` or
``2 Xh Xw``; decoder inputs ``J``); ``"q"`` is ``{"mu", "log_sigma"}``; ``"write"``
maps ``h^dec`` to ``Nw^2`` (or ``Xh Xw``) values; ``"read"`` and ``"write_attn"`` map
it to the five attention parameters (``{}`` without attention). Every linear map is
``{"w", "b"}``, Glorot-uniform weights and zero biases (so a fresh model looks at
the whole image with ``sigma = delta~ = gamma = 1``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax._validate import check_cell
from rnnjax.cells.base import (
    check_key,
    check_positive_int,
    dense,
    dense_params,
    event_ndim,
    expand,
    output_size,
)
from rnnjax.cells.lstm import lstm
from rnnjax.models.generative import bernoulli_log_prob

Array = jax.Array
FILTER_EPS = 1e-8  # keeps a row of F finite when every filter falls off the image

# -------------------------------------------------------------- attention pieces


class Glimpse(NamedTuple):
    """One read or write attention; each field ``(*B,)`` (``(*B, T)`` in ``aux``).

    ``center_x``, ``center_y`` are the grid centre in 0-based array indices (the
    paper's ``gX - 1``, ``gY - 1``); ``delta`` the stride between filters,
    ``sigma`` their standard deviation, ``gamma`` the intensity, all in pixels.
    """

    center_x: Array
    center_y: Array
    delta: Array
    sigma: Array
    gamma: Array


def glimpse(raw: Array, image_shape: tuple[int, int], n: int) -> Glimpse:
    """The `Glimpse` of ``raw (*B, 5) = (g~x, g~y, log sigma^2, log delta~,
    log gamma)`` for an ``n x n`` grid (``Nr`` or ``Nw``) on a ``(Xh, Xw)`` image."""
    height, width = image_shape
    gx_, gy_, log_var, log_delta, log_gamma = jnp.moveaxis(raw, -1, 0)
    gx = (width + 1) / 2 * (gx_ + 1)
    gy = (height + 1) / 2 * (gy_ + 1)
    delta = (max(height, width) - 1) / max(n - 1, 1) * jnp.exp(log_delta)
    return Glimpse(gx - 1, gy - 1, delta, jnp.exp(0.5 * log_var), jnp.exp(log_gamma))


def _bank(center, delta, sigma, n, size):
    """``(*B, n, size)`` row-normalised Gaussian filters along one axis."""
    offsets = jnp.arange(1, n + 1, dtype=center.dtype) - n / 2 - 0.5
    mu = center[..., None] + expand(offsets, center.ndim + 1) * delta[..., None]
    pixels = expand(jnp.arange(size, dtype=center.dtype), mu.ndim + 1)
    var = sigma[..., None, None] ** 2
    f = jnp.exp(-jnp.square(pixels - mu[..., None]) / (2 * var))
    return f / (jnp.sum(f, axis=-1, keepdims=True) + FILTER_EPS)


def filterbank(g: Glimpse, image_shape: tuple[int, int], n: int):
    """``(F_Y (*B, n, Xh), F_X (*B, n, Xw))`` of the glimpse ``g``."""
    height, width = image_shape
    f_y = _bank(g.center_y, g.delta, g.sigma, n, height)
    f_x = _bank(g.center_x, g.delta, g.sigma, n, width)
    return f_y, f_x


def apply_read(image: Array, f_y: Array, f_x: Array, gamma: Array) -> Array:
    """``gamma F_Y image F_X^T``: ``(*B, Xh, Xw) -> (*B, Nr, Nr)``."""
    patch = jnp.einsum("...iy,...yx,...jx->...ij", f_y, image, f_x)
    return gamma[..., None, None] * patch


def apply_write(patch: Array, f_y: Array, f_x: Array, gamma: Array) -> Array:
    """``F_Y^T patch F_X / gamma``: ``(*B, Nw, Nw) -> (*B, Xh, Xw)``."""
    image = jnp.einsum("...iy,...ij,...jx->...yx", f_y, patch, f_x)
    return image / gamma[..., None, None]


# ------------------------------------------------------------------------ the model


@dataclasses.dataclass(frozen=True)
class DRAW:
    """A DRAW network; build it with [`draw`][rnnjax.models.draw.draw].

    Attributes:
      image_shape: ``(Xh, Xw)``.
      steps: ``T``.
      latent_size: ``J``.
      encoder: rnnjax cells (inputs of size ``R + H_dec`` and ``J``).
      decoder: as ``encoder``.
      read_size: ``Nr`` and ``Nw`` (used with attention only).
      write_size: as ``read_size``.
      attention: the Gaussian filterbank read and write, or the whole image.
    """

    image_shape: tuple[int, int]
    steps: int
    latent_size: int
    encoder: Any
    decoder: Any
    read_size: int = 2
    write_size: int = 5
    attention: bool = True

    def __post_init__(self):
        shape = self.image_shape
        if not (isinstance(shape, tuple) and len(shape) == 2):
            raise ValueError(f"image_shape: expected (height, width), got {shape!r}")
        check_positive_int(shape[0], "image_shape[0]")
        check_positive_int(shape[1], "image_shape[1]")
        for name in ("steps", "latent_size", "read_size", "write_size"):
            check_positive_int(getattr(self, name), name)
        if not isinstance(self.attention, bool):
            raise TypeError(f"attention: expected a bool, got {self.attention!r}")
        for name in ("encoder", "decoder"):
            cell = getattr(self, name)
            check_cell(cell, name)
            if event_ndim(cell) != 1:
                raise ValueError(
                    f"{name}: expected a cell over feature vectors, got one with "
                    f"event_ndim={event_ndim(cell)}"
                )

    @property
    def read_features(self) -> int:
        """``R``: ``2 Nr^2`` with attention, ``2 Xh Xw`` without."""
        pixels = self.read_size**2 if self.attention else self._pixels
        return 2 * pixels

    @property
    def _pixels(self) -> int:
        return self.image_shape[0] * self.image_shape[1]

    def init(self, key) -> dict:
        """Fresh parameters (see the module docstring)."""
        check_key(key, "key")
        h_dec, h_enc = output_size(self.decoder), output_size(self.encoder)
        J = self.latent_size
        k = jax.random.split(key, 7)
        patch = self.write_size**2 if self.attention else self._pixels
        attn = lambda kk: dense_params(kk, h_dec, 5) if self.attention else {}
        return {
            "encoder": self.encoder.init(k[0], self.read_features + h_dec),
            "decoder": self.decoder.init(k[1], J),
            "q": {
                "mu": dense_params(k[2], h_enc, J),
                "log_sigma": dense_params(k[3], h_enc, J),
            },
            "read": attn(k[4]),
            "write": dense_params(k[5], h_dec, patch),
            "write_attn": attn(k[6]),
        }

    # ------------------------------------------------------------------- pieces

    def read(self, params, x, x_hat, h_dec):
        """``(r (*B, R), Glimpse or None)`` from images ``(*B, Xh, Xw)`` and
        ``h^dec_{t-1} (*B, H_dec)``."""
        if not self.attention:
            flat = lambda a: a.reshape((*a.shape[:-2], self._pixels))
            return jnp.concatenate([flat(x), flat(x_hat)], axis=-1), None
        Nr = self.read_size
        g = glimpse(dense(params["read"], h_dec), self.image_shape, Nr)
        f_y, f_x = filterbank(g, self.image_shape, Nr)
        both = jnp.stack([x, x_hat], axis=-3)  # one einsum for the two glimpses
        f_y, f_x, gamma = f_y[..., None, :, :], f_x[..., None, :, :], g.gamma[..., None]
        patches = apply_read(both, f_y, f_x, gamma)
        return patches.reshape((*patches.shape[:-3], 2 * Nr * Nr)), g

    def write(self, params, h_dec):
        """``(canvas increment (*B, Xh, Xw), Glimpse or None)`` from ``h^dec_t``."""
        w = dense(params["write"], h_dec)
        if not self.attention:
            return w.reshape((*w.shape[:-1], *self.image_shape)), None
        Nw = self.write_size
        g = glimpse(dense(params["write_attn"], h_dec), self.image_shape, Nw)
        f_y, f_x = filterbank(g, self.image_shape, Nw)
        return apply_write(w.reshape((*w.shape[:-1], Nw, Nw)), f_y, f_x, g.gamma), g

    def posterior(self, params, h_enc):
        """``(mu, log sigma)``, each ``(*B, J)``, of ``Q(Z_t | h^enc_t)``."""
        q = params["q"]
        return dense(q["mu"], h_enc), dense(q["log_sigma"], h_enc)

    def _initial(self, batch, dtype):
        enc = self.encoder.initial_carry(batch, dtype)
        dec = self.decoder.initial_carry(batch, dtype)
        h_dec = jnp.zeros((*batch, output_size(self.decoder)), dtype)
        return enc, dec, h_dec, jnp.zeros((*batch, *self.image_shape), dtype)

    # --------------------------------------------------------------------- bound

    def elbo(self, params, x, key=None, *, eps=None):
        """The variational bound ``-(L^x + L^z)`` of each image and its terms.

        Args:
          params: from `init`.
          x: ``(*B, Xh, Xw)`` images in ``[0, 1]`` (binary for an exact likelihood).
          key: the PRNG key of ``eps = jax.random.normal(key, (*B, T, J))``.
          eps: ``(*B, T, J)``, used instead of drawing from ``key``.

        Returns:
          ``(bound (*B,), aux)`` with ``aux["kl"] (*B, T)`` (``L^z`` per step),
          ``aux["nll"] (*B,)`` (``L^x``), ``aux["canvases"] (*B, T, Xh, Xw)``
          (``sigmoid(c_t)``) and, with attention, ``aux["read"]`` and
          ``aux["write"]``: `Glimpse` with fields ``(*B, T)``.
        """
        x = self._check_x(x)
        batch = x.shape[:-2]
        eps = self._noise(key, eps, batch, "eps", x.dtype)

        def step(state, e):
            enc, dec, h_dec, c = state
            r, g_read = self.read(params, x, x - jax.nn.sigmoid(c), h_dec)
            inp = jnp.concatenate([r, h_dec], axis=-1)
            enc, h_enc = self.encoder.step(params["encoder"], enc, inp)
            mu, log_sigma = self.posterior(params, h_enc)
            z = mu + jnp.exp(log_sigma) * e
            dec, h_dec = self.decoder.step(params["decoder"], dec, z)
            dc, g_write = self.write(params, h_dec)
            c = c + dc
            var = jnp.exp(2 * log_sigma)
            kl = jnp.sum(0.5 * (jnp.square(mu) + var - 2 * log_sigma) - 0.5, axis=-1)
            return (enc, dec, h_dec, c), (kl, c, g_read, g_write)

        state = self._initial(batch, x.dtype)
        (*_, c_T), outs = lax.scan(step, state, jnp.moveaxis(eps, -2, 0))
        kl, cs, g_read, g_write = outs
        kl, g_read, g_write = jax.tree.map(
            lambda a: jnp.moveaxis(a, 0, -1), (kl, g_read, g_write)
        )
        flat = lambda a: a.reshape((*batch, self._pixels))
        nll = -bernoulli_log_prob(flat(x), flat(c_T))
        canvases = jax.nn.sigmoid(jnp.moveaxis(cs, 0, -3))
        aux = {"kl": kl, "nll": nll, "canvases": canvases}
        if self.attention:
            aux["read"], aux["write"] = g_read, g_write
        return -(nll + jnp.sum(kl, axis=-1)), aux

    def sample(self, params, key=None, batch_shape=(), *, z=None):
        """Canvases ``sigmoid(c_t) (*B, T, Xh, Xw)`` of the decoder alone run on
        ``z = jax.random.normal(key, (*B, T, J))`` (or the given ``z``)."""
        batch = self._check_batch(batch_shape)
        z = self._noise(key, z, batch, "z", jnp.float32)

        def step(state, z_t):
            dec, h_dec, c = state
            dec, h_dec = self.decoder.step(params["decoder"], dec, z_t)
            c = c + self.write(params, h_dec)[0]
            return (dec, h_dec, c), c

        _, dec, h_dec, c = self._initial(batch, z.dtype)
        _, cs = lax.scan(step, (dec, h_dec, c), jnp.moveaxis(z, -2, 0))
        return jax.nn.sigmoid(jnp.moveaxis(cs, 0, -3))

    # --------------------------------------------------------------- validation

    def _check_x(self, x):
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise TypeError(f"x: expected an array, got {type(x).__name__}")
        if x.ndim < 2 or tuple(x.shape[-2:]) != self.image_shape:
            raise ValueError(
                f"x: expected shape (*B, {self.image_shape[0]}, "
                f"{self.image_shape[1]}), got {tuple(x.shape)}"
            )
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.float32)
        return x

    def _noise(self, key, noise, batch, name, dtype):
        shape = (*batch, self.steps, self.latent_size)
        if noise is None:
            check_key(key, "key")
            return jax.random.normal(key, shape, dtype)
        if tuple(jnp.shape(noise)) != shape:
            raise ValueError(
                f"{name}: expected shape {shape} (*B, T, J), got {jnp.shape(noise)}"
            )
        return jnp.asarray(noise, dtype)

    @staticmethod
    def _check_batch(batch_shape):
        batch = tuple(batch_shape) if isinstance(batch_shape, (tuple, list)) else None
        if batch is None or not all(
            isinstance(b, int) and not isinstance(b, bool) and b >= 0 for b in batch
        ):
            raise ValueError(
                f"batch_shape: expected a tuple of non-negative ints, got "
                f"{batch_shape!r}"
            )
        return batch


def draw(
    image_shape,
    *,
    steps: int = 64,
    hidden_size: int = 256,
    latent_size: int = 100,
    read_size: int = 2,
    write_size: int = 5,
    attention: bool = True,
    encoder=None,
    decoder=None,
) -> DRAW:
    """A DRAW network (Gregor et al. 2015; equations in the module docstring).

    Defaults are the paper's MNIST generator (64 glimpses, 256 LSTM units, 100
    latents, 2 x 2 reads, 5 x 5 writes).

    Args:
      image_shape: ``(Xh, Xw)``, height and width (need not be square).
      steps: ``T``, the number of glimpses.
      hidden_size: ``H`` of the default LSTM encoder and decoder.
      latent_size: ``J``.
      read_size: ``Nr`` and ``Nw``, the read and write grids.
      write_size: as ``read_size``.
      attention: the Gaussian filterbank read and write (``False``: read the whole
        image and its error, write a whole-image increment).
      encoder: any rnnjax cells (default ``rnnjax.lstm(hidden_size)``);
        their output sizes then win over ``hidden_size``.
      decoder: as ``encoder``.
    """
    check_positive_int(hidden_size, "hidden_size")
    if isinstance(image_shape, list):
        image_shape = tuple(image_shape)
    return DRAW(
        image_shape,
        steps,
        latent_size,
        lstm(hidden_size) if encoder is None else encoder,
        lstm(hidden_size) if decoder is None else decoder,
        read_size=read_size,
        write_size=write_size,
        attention=attention,
    )

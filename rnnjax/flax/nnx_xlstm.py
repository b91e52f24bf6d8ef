"""The xLSTM models of `rnnjax.models` (stacks, blocks, layers) as NNX modules
(re-exported by ``rnnjax.flax.nnx``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from rnnjax.flax.linen_xlstm import check_xlstm_model
from rnnjax.flax.nnx_params import assign_params, unwrap_params, wrap_params
from rnnjax.unroll import UnrollOptions


class XLSTM(nnx.Module):
    """An xLSTM stack (`rnnjax.models.xlstm_stack`), block or layer, run by
    rnnjax:

        model = rnnjax.models.xlstm_stack(64, 4, slstm_at="1:1")
        layer = rnn.XLSTM(model, rngs=nnx.Rngs(0))
        ys = layer(xs)                                  # xs, ys: (B, T, 64)

    Args:
      model: the rnnjax xLSTM model.
      options: how the recurrences run, an
        [`rnnjax.UnrollOptions`][rnnjax.UnrollOptions] (the sLSTM's
        implementation and the mLSTM's form).
      deterministic: dropout off when true; ``False`` by default (NNX modules
        start in training mode); ``.eval()`` / ``.train()`` set it.
      return_carry: default of the call's ``return_carry``.
      rng_collection: the ``nnx.Rngs`` stream dropout draws from.
      rngs: ``rngs.params()`` draws the parameters; the dropout stream is forked
        and kept (only when the model has dropout).

    Attributes:
      model: the rnnjax model (static).
      params: the pytree of ``model.init``, each array an ``nnx.Param``.
    """

    def __init__(
        self,
        model,
        *,
        options: UnrollOptions | None = None,
        deterministic: bool | None = False,
        return_carry: bool = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs,
    ):
        check_xlstm_model(model)
        self.model = model
        self.options = UnrollOptions() if options is None else options
        self.deterministic = deterministic
        self.return_carry = return_carry
        self.params = wrap_params(model.init(rngs.params()))
        self.rngs = rngs[rng_collection].fork() if model.has_dropout else None
        self.rngs = nnx.data(self.rngs)

    def __call__(
        self,
        xs,
        *,
        carry=None,
        seq_lengths=None,
        deterministic: bool | None = None,
        return_carry: bool | None = None,
        rngs: nnx.RngStream | jax.Array | None = None,
    ):
        """Runs the model over ``xs (*B, T, E)``; ``carry``, ``seq_lengths``,
        ``deterministic`` and ``return_carry`` as the linen `XLSTM`; ``rngs``
        (a stream or a key) overrides the dropout stream kept at construction.

        Returns:
          ``ys (*B, T, E)``, or ``(carry, ys)`` with ``return_carry``.
        """
        deterministic = self.deterministic if deterministic is None else deterministic
        training = self.model.has_dropout and not deterministic
        key = None
        if training:
            rngs = self.rngs if rngs is None else rngs
            key = rngs() if isinstance(rngs, nnx.RngStream) else rngs
        carry, ys = self.model.apply(
            self.get_params(),
            xs,
            carry=carry,
            seq_lengths=seq_lengths,
            key=key,
            training=training,
            options=self.options,
        )
        return_carry = self.return_carry if return_carry is None else return_carry
        return (carry, ys) if return_carry else ys

    def get_params(self):
        """The parameters as the plain pytree of ``model.init``."""
        return unwrap_params(self.params)

    def set_params(self, params) -> None:
        """Loads ``params``, a pytree of ``model.init``'s structure."""
        assign_params(self.params, params)

    def initial_carry(self, batch_shape: tuple[int, ...] = (), dtype=jnp.float32):
        """The zero carry for batch shape ``B`` (the model's, unchanged)."""
        return self.model.initial_carry(batch_shape, dtype)

    def set_view(self, deterministic: bool | None = None):
        """Used by ``nnx.view`` and ``.eval()``/``.train()``."""
        if deterministic is not None:
            self.deterministic = deterministic

"""The xLSTM models of `rnnjax.models` (stacks, blocks, layers) as linen modules
(re-exported by ``rnnjax.flax.linen``)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from rnnjax.models.xlstm import XLSTMBlock, XLSTMStack
from rnnjax.models.xlstm_layers import MLSTMLayer, SLSTMLayer
from rnnjax.unroll import UnrollOptions

XLSTM_MODELS = (XLSTMStack, XLSTMBlock, SLSTMLayer, MLSTMLayer)


def check_xlstm_model(model) -> None:
    """TypeError naming ``model`` unless it is an xLSTM model of `rnnjax.models`."""
    if not isinstance(model, XLSTM_MODELS):
        raise TypeError(
            "model: expected an xLSTM model of rnnjax.models (xlstm_stack(...), an "
            f"XLSTMBlock, SLSTMLayer or MLSTMLayer), got {type(model).__name__}"
        )


class XLSTM(nn.Module):
    """An xLSTM stack (`rnnjax.models.xlstm_stack`), block or layer, run by
    rnnjax:

        model = rnnjax.models.xlstm_stack(64, 4, slstm_at="1:1")
        layer = rnn.XLSTM(model)
        variables = layer.init(jax.random.key(0), xs)           # xs (B, T, 64)
        ys = layer.apply(variables, xs)                         # (B, T, 64)

    Attributes:
      model: the rnnjax xLSTM model.
      options: how the recurrences run, an
        [`rnnjax.UnrollOptions`][rnnjax.UnrollOptions] (the sLSTM's
        implementation and the mLSTM's form).
      deterministic: default of the call's ``deterministic`` (dropout off when
        true). Needed, here or at the call, only when the model has dropout.
      return_carry: default of the call's ``return_carry``.
      rng_collection: the Flax RNG stream dropout draws from (``"dropout"``).

    Parameters: ``params["model"]``, exactly the pytree of ``model.init``.
    """

    model: Any
    options: UnrollOptions = UnrollOptions()
    deterministic: bool | None = None
    return_carry: bool = False
    rng_collection: str = "dropout"

    def __post_init__(self):
        check_xlstm_model(self.model)
        super().__post_init__()

    @nn.compact
    def __call__(
        self,
        xs,
        *,
        carry=None,
        seq_lengths=None,
        deterministic: bool | None = None,
        return_carry: bool | None = None,
    ):
        """Runs the model over ``xs (*B, T, E)``.

        Args:
          xs: the inputs, ``E`` the model's ``embedding_dim``.
          carry: the model's carry (see `initial_carry`; zeros when ``None``).
          seq_lengths: valid lengths ``(*B,)`` of right-padded sequences.
          deterministic: dropout off when true; overrides the attribute.
          return_carry: also return the final carry; overrides the attribute.

        Returns:
          ``ys (*B, T, E)``, or ``(carry, ys)`` with ``return_carry``.
        """
        params = self.param("model", self.model.init)
        training = False
        if self.model.has_dropout:
            training = not nn.merge_param(
                "deterministic", self.deterministic, deterministic
            )
        carry, ys = self.model.apply(
            params,
            xs,
            carry=carry,
            seq_lengths=seq_lengths,
            key=self.make_rng(self.rng_collection) if training else None,
            training=training,
            options=self.options,
        )
        return_carry = self.return_carry if return_carry is None else return_carry
        return (carry, ys) if return_carry else ys

    @nn.nowrap
    def initial_carry(self, batch_shape: tuple[int, ...] = (), dtype=jnp.float32):
        """The zero carry for batch shape ``B`` (the model's, unchanged)."""
        return self.model.initial_carry(batch_shape, dtype)

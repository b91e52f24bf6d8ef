"""Recurrent layers by composition: one direction (`Layer`), both directions
with a merge (`Bidirectional`), and a `Stack` of them with dropout
between layers, as Flax composes ``nn.RNN`` and ``nn.Bidirectional``:

    lstm = rnnjax.lstm(64)
    both = rnnjax.Bidirectional(rnnjax.Layer(lstm), rnnjax.Layer(lstm), merge=jnp.add)
    model = rnnjax.Stack((both, rnnjax.Layer(rnnjax.gru(64))), dropout=0.1)
    params = model.init(jax.random.key(0), input_size=32)  # params[layer][direction]
    carry, ys = model.apply(params, xs, options=rnnjax.UnrollOptions(remat="step"))

`rnnjax.stack` builds the usual stack (one configuration in every layer).
"""

from rnnjax.layers.directional import Bidirectional, Layer, concatenate
from rnnjax.layers.stacked import Stack, stack

__all__ = ["Bidirectional", "Layer", "Stack", "concatenate", "stack"]

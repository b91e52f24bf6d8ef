"""Networks built from rnnjax cells: the soft-attention decoder (Bahdanau et al.
2015; Xu et al. 2015), the variational recurrent networks VRNN (Chung et al. 2015)
and STORN (Bayer & Osendorfer 2014), and DRAW (Gregor et al. 2015).

``rnnjax.models.draw`` is the DRAW factory, which shadows the module of the same
name; reach the module's other names with ``from rnnjax.models.draw import ...``.
"""

from rnnjax.models import attention, generative
from rnnjax.models.attention import (
    AttentionDecoder,
    attention_decoder,
    doubly_stochastic_penalty,
)
from rnnjax.models.draw import DRAW, Glimpse, draw
from rnnjax.models.generative import GenerativeRNN, storn, vrnn

__all__ = [
    "DRAW",
    "AttentionDecoder",
    "GenerativeRNN",
    "Glimpse",
    "attention",
    "attention_decoder",
    "doubly_stochastic_penalty",
    "draw",
    "generative",
    "storn",
    "vrnn",
]

"""Networks built from rnnjax cells: the soft-attention decoder (Bahdanau et al.
2015; Xu et al. 2015), the variational recurrent networks VRNN (Chung et al. 2015)
and STORN (Bayer & Osendorfer 2014), DRAW (Gregor et al. 2015), and xLSTM (Beck et
al. 2024): its sLSTM and mLSTM layers, pre-norm residual blocks and the block stack
(`xlstm_stack`), as the ``xlstm`` package builds them.

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
from rnnjax.models.xlstm import XLSTMBlock, XLSTMStack, xlstm_stack
from rnnjax.models.xlstm_layers import LayerState, MLSTMLayer, SLSTMLayer
from rnnjax.models.xlstm_parts import GatedFFN

__all__ = [
    "DRAW",
    "AttentionDecoder",
    "GatedFFN",
    "GenerativeRNN",
    "Glimpse",
    "LayerState",
    "MLSTMLayer",
    "SLSTMLayer",
    "XLSTMBlock",
    "XLSTMStack",
    "attention",
    "attention_decoder",
    "doubly_stochastic_penalty",
    "draw",
    "generative",
    "storn",
    "vrnn",
    "xlstm_stack",
]

"""An xLSTM stack on multi-query associative recall (MQAR; the xLSTM paper's
Section 4.1): `mqar_lstm`'s task with `base.xlstm_model`'s model group.

Two blocks of width 64 by default, an mLSTM block then an sLSTM block (xLSTM
[1:1], ``model.xlstm.slstm_at = "1"``); ``--config.model.xlstm.slstm_at=`` (empty)
gives an mLSTM-only stack (xLSTM [1:0]). Token ids go through an embedding table,
the read-out is linear; loss and accuracy at the query steps only.
"""

from __future__ import annotations

import ml_collections

from rnnjax.configs import base, mqar_lstm


def get_config() -> ml_collections.ConfigDict:
    config = mqar_lstm.get_config()
    config.model = base.xlstm_model()
    config.model.xlstm.embedding_dim = 64
    config.model.xlstm.num_blocks = 2
    config.model.xlstm.slstm_at = "1"
    config.optimizer.learning_rate = 3e-3
    return config

"""Character-level language model with an xLSTM stack on the built-in corpus:
`char_lstm`'s task, data and sampling with `base.xlstm_model`'s model group.

Two blocks of width 128, an mLSTM block then an sLSTM block (xLSTM [1:1]); token
ids go through an embedding table and a linear read-out gives the next-character
logits. Windows of 64 characters (half `char_lstm`'s 128: the mLSTM's parallel
form is quadratic in the window). Sized to train in minutes on two CPU cores:
`rnnjax train --config xlstm_char` ran at 3.5 to 4.7 steps/s on the shared 2-core
Intel Xeon of `benchmarks/RESULTS.md` (batch split over its two CPU devices), so
its 1,200 steps take about 5 minutes; after 200 steps the validation figure was
2.30 bits per character (the metric, on the held-out end of the text).
"""

from __future__ import annotations

import ml_collections

from rnnjax.configs import base, char_lstm


def get_config() -> ml_collections.ConfigDict:
    config = char_lstm.get_config()
    config.model = base.xlstm_model()
    config.model.xlstm.embedding_dim = 128
    config.model.xlstm.num_blocks = 2
    config.model.xlstm.slstm_at = "1"
    config.optimizer.learning_rate = 2e-3
    config.seq_len = 64
    return config

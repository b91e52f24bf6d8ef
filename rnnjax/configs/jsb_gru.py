"""GRU on JSB Chorales: the LSTM configuration with the cell swapped."""

from __future__ import annotations

import ml_collections

from rnnjax.configs import jsb_lstm


def get_config() -> ml_collections.ConfigDict:
    config = jsb_lstm.get_config()
    config.model.cell = "gru"
    return config

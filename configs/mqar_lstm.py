"""The built-in `mqar_lstm` config (rnnjax/configs/mqar_lstm.py); run it with
`rnnjax train --config configs/mqar_lstm.py` or `--config mqar_lstm`."""

from rnnjax.configs.mqar_lstm import get_config

__all__ = ["get_config"]

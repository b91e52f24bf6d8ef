"""The built-in `adding_lstm` config (rnnjax/configs/adding_lstm.py); run it with
`rnnjax train --config configs/adding_lstm.py` or `--config adding_lstm`."""

from rnnjax.configs.adding_lstm import get_config

__all__ = ["get_config"]

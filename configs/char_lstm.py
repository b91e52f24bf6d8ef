"""The built-in `char_lstm` config (rnnjax/configs/char_lstm.py); run it with
`rnnjax train --config configs/char_lstm.py` or `--config char_lstm`."""

from rnnjax.configs.char_lstm import get_config

__all__ = ["get_config"]

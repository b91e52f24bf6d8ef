"""The built-in `jsb_lstm` config (rnnjax/configs/jsb_lstm.py); run it with
`rnnjax train --config configs/jsb_lstm.py` or `--config jsb_lstm`."""

from rnnjax.configs.jsb_lstm import get_config

__all__ = ["get_config"]

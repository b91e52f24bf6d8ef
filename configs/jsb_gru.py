"""The built-in `jsb_gru` config (rnnjax/configs/jsb_gru.py); run it with
`rnnjax train --config configs/jsb_gru.py` or `--config jsb_gru`."""

from rnnjax.configs.jsb_gru import get_config

__all__ = ["get_config"]

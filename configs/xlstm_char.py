"""The built-in `xlstm_char` config (rnnjax/configs/xlstm_char.py); run it with
`rnnjax train --config configs/xlstm_char.py` or `--config xlstm_char`."""

from rnnjax.configs.xlstm_char import get_config

__all__ = ["get_config"]

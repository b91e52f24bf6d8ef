"""The built-in `mqar_xlstm` config (rnnjax/configs/mqar_xlstm.py); run it with
`rnnjax train --config configs/mqar_xlstm.py` or `--config mqar_xlstm`."""

from rnnjax.configs.mqar_xlstm import get_config

__all__ = ["get_config"]

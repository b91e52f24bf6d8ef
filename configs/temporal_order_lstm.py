"""The built-in `temporal_order_lstm` config (rnnjax/configs/temporal_order_lstm.py);
run it with `rnnjax train --config configs/temporal_order_lstm.py` or `--config
temporal_order_lstm`."""

from rnnjax.configs.temporal_order_lstm import get_config

__all__ = ["get_config"]

"""Data for rnnjax: synthetic long-time-lag tasks, multi-query associative recall
(MQAR), character text, JSB Chorales, scikit-learn's 8 x 8 digits.

Pure NumPy (JAX keys are accepted as seeds); nothing here imports Flax or Optax.
"""

from rnnjax.data.digits import load_digits
from rnnjax.data.music import load_jsb, pad_batch
from rnnjax.data.recall import mqar
from rnnjax.data.synthetic import (
    ADDING_TOLERANCE,
    TEMPORAL_ORDER_CLASSES,
    TEMPORAL_ORDER_SYMBOLS,
    TEMPORAL_ORDER_TOLERANCE,
    Batch,
    adding,
    copy,
    long_time_lag,
    multiplication,
    parity,
    temporal_order,
)
from rnnjax.data.text import CharVocab, batches, default_corpus, load_text

__all__ = [
    "ADDING_TOLERANCE",
    "TEMPORAL_ORDER_CLASSES",
    "TEMPORAL_ORDER_SYMBOLS",
    "TEMPORAL_ORDER_TOLERANCE",
    "Batch",
    "CharVocab",
    "adding",
    "batches",
    "copy",
    "default_corpus",
    "load_digits",
    "load_jsb",
    "load_text",
    "long_time_lag",
    "mqar",
    "multiplication",
    "pad_batch",
    "parity",
    "temporal_order",
]

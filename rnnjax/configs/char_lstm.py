"""Character-level LSTM language model on the built-in corpus (the default).

With ``data.text_path`` empty the text is ``rnnjax.data.default_corpus()``, the
Python standard library's own sources, so nothing is downloaded. The text is cut
in three, in order: training, ``data.valid_fraction`` for the evaluations during
training, and the last ``data.test_fraction`` for the test figure; the metric is
bits per character. Sized to train in minutes on two CPU cores: 1,200 steps at
16.5 steps/s on a 2-core Intel Xeon with AMX (`rnnjax train`, commit a271fee,
benchmarks/RESULTS.md), 7 to 10 steps/s on a 2-core AMD EPYC.
"""

from __future__ import annotations

import ml_collections

from rnnjax.configs import base


def get_config() -> ml_collections.ConfigDict:
    config = base.get_config()
    config.task = "char"
    config.data = ml_collections.ConfigDict()
    # A UTF-8 text file; empty for the built-in corpus.
    config.data.text_path = ""
    # The text is cut to this many characters.
    config.data.max_chars = 1_000_000
    # The held-out parts of the text: valid (evaluated during training), then test.
    config.data.valid_fraction = 0.05
    config.data.test_fraction = 0.05
    # What `rnnjax train` prints at the end (and the defaults of `rnnjax sample`).
    config.sample = ml_collections.ConfigDict()
    config.sample.prompt = "def "
    config.sample.length = 300
    config.sample.temperature = 0.7
    config.sample.num_samples = 2

    config.model.hidden_size = 256
    config.optimizer.learning_rate = 4e-3
    config.optimizer.schedule = "cosine"
    config.optimizer.warmup_steps = 50
    config.batch_size = 32
    config.seq_len = 128
    config.steps = 1200
    config.eval_every = 200
    config.checkpoint_every = 200
    config.log_every = 50
    return config

"""The temporal order task: a run, and the paper's criterion."""

import numpy as np
import pytest

from rnnjax import configs
from rnnjax.train import experiment
from rnnjax.train.tasks import temporal_order
from tests.train._configs import tiny


def test_temporal_order_run_and_metrics(tmp_path, fast_compile):
    extra = [("seq_len", "20"), ("data.eval_batches", "2"), ("data.num_relevant", "3")]
    config = tiny("temporal_order_lstm", extra=extra)
    exp = experiment.build(config)
    batch = exp.data.train_batch(0)
    assert batch.inputs.shape[0] == 4 and batch.inputs.shape[2] == 8
    results = experiment.train_and_evaluate(config, tmp_path / "run", progress=False)
    assert set(results["test"]) == {"loss", "accuracy", "solved"}
    assert 0 <= results["test"]["solved"] <= results["test"]["accuracy"] <= 1
    # The paper's criterion: every output within 0.3 of the one-hot target.
    logits = np.where(np.eye(8)[batch.targets] > 0, 5.0, 0.0)  # p(target) ~ 0.95
    counts = temporal_order.order_hits(logits, batch)
    assert int(counts["solved"]) == int(counts["hits"]) == 4
    counts = temporal_order.order_hits(logits / 5.0, batch)  # p(target) ~ 0.28
    assert int(counts["solved"]) == 0 and int(counts["hits"]) == 4
    bad_config = configs.override(config, [("data.num_relevant", "4")])
    with pytest.raises(ValueError, match=r"config\.data\.num_relevant: expected 2"):
        experiment.build(bad_config)

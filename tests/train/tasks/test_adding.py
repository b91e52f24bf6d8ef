"""The adding task: batches and its accuracy criterion (absolute error < 0.04)."""

import jax.numpy as jnp
import numpy as np

from rnnjax import data
from rnnjax.train import experiment, tasks
from tests.train._configs import tiny


def test_batches_and_hits():
    extra = [("seq_len", "12"), ("data.eval_batches", "2")]
    exp = experiment.build(tiny("adding_lstm", extra=extra))
    batch = exp.data.train_batch(0)
    assert batch.inputs.shape[0] == 4 and batch.inputs.shape[2] == 2
    assert len(exp.data.eval_batches("test")) == 2
    task = tasks.get("adding")
    near = jnp.asarray(batch.targets) + 0.5 * data.ADDING_TOLERANCE
    scored = int(np.sum(batch.mask > 0))
    assert int(task.eval_sums(near, batch)["hits"]) == scored
    far = jnp.asarray(batch.targets) + 2 * data.ADDING_TOLERANCE
    assert int(task.eval_sums(far, batch)["hits"]) == 0
    summary = task.summary(0.5, {"loss": 2.0, "count": 4, "hits": 3})
    assert summary == {"loss": 0.5, "mse": 0.5, "solved": 0.75}

"""The mqar task: a run, and the loss and accuracy counted at the queries only."""

import jax
import numpy as np
import pytest

from rnnjax import configs
from rnnjax.train import experiment, schema
from rnnjax.train.tasks import mqar
from tests.train._configs import bad, tiny

EXTRA = [("seq_len", "16"), ("data.num_kv_pairs", "3"), ("data.vocab_size", "16")]
EXTRA += [("data.eval_batches", "2")]


def test_mqar_run_and_metrics(tmp_path):
    config = tiny("mqar_lstm", extra=EXTRA)
    exp = experiment.build(config)
    assert (exp.model.input_size, exp.model.output_size) == (16, 16)
    assert exp.model.one_hot
    batch = exp.data.train_batch(0)
    assert batch.inputs.shape == (4, 16) and batch.inputs.dtype == np.int32
    np.testing.assert_array_equal(batch.mask.sum(axis=1), 3)
    results = experiment.train_and_evaluate(config, tmp_path / "run", progress=False)
    assert set(results["test"]) == {"loss", "accuracy"}
    assert 0 <= results["test"]["accuracy"] <= 1


def test_only_the_queries_count():
    exp = experiment.build(tiny("mqar_lstm", extra=EXTRA))
    task, batch = exp.task, exp.data.train_batch(0)
    # Right at every query, confidently wrong everywhere else: loss ~ 0, all hits.
    right = np.where(np.eye(16)[batch.targets] > 0, 20.0, 0.0)
    wrong = np.roll(right, 1, axis=-1)
    logits = np.where(batch.mask[..., None] > 0, right, wrong).astype(np.float32)
    loss, count = task.loss(logits, batch)
    assert int(count) == 12 and float(loss) < 1e-6
    sums = task.eval_sums(logits, batch)
    assert int(sums["hits"]) == 12
    summary = task.summary(float(loss), {"loss": 0.0, "count": 12, **sums})
    assert summary["accuracy"] == 1.0
    # Uniform logits: the loss is log(vocabulary size) at the queries.
    loss, _ = task.loss(np.zeros_like(logits), batch)
    np.testing.assert_allclose(float(loss), np.log(16), rtol=1e-6)
    # One query wrong in one row.
    row, step = np.argwhere(batch.mask > 0)[0]
    logits[row, step] = wrong[row, step]
    assert int(task.eval_sums(logits, batch)["hits"]) == 11
    assert jax.numpy.asarray(task.eval_sums(logits, batch)["hits"]).dtype == np.int32


def test_the_eval_batches_are_fixed_by_the_seed():
    data = experiment.build(tiny("mqar_lstm", extra=EXTRA)).data
    again = experiment.build(tiny("mqar_lstm", extra=EXTRA)).data
    for a, b in zip(data.eval_batches("test"), again.eval_batches("test"), strict=True):
        np.testing.assert_array_equal(a.inputs, b.inputs)
    valid, test = data.eval_batches("valid")[0], data.eval_batches("test")[0]
    assert not np.array_equal(valid.inputs, test.inputs)
    assert not np.array_equal(data.train_batch(0).inputs, data.train_batch(1).inputs)


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("data.num_kv_pairs", 8, r"config\.data\.vocab_size: expected an int >= 18"),
        ("data.num_kv_pairs", 5, r"config\.seq_len: expected an int >= 4 \* data"),
        ("data.num_kv_pairs", 0, r"config\.data\.num_kv_pairs: expected an int >= 1"),
        ("data.power_a", 0.0, r"config\.data\.power_a: expected a float in \(0, 1\]"),
        ("data.eval_batches", 0, r"config\.data\.eval_batches: expected an int >= 1"),
    ],
)
def test_bad_mqar_configs(key, value, match):
    with pytest.raises(ValueError, match=match):
        schema.check_config(bad(tiny("mqar_lstm", extra=EXTRA), key, value))


def test_the_task_is_registered_with_its_config():
    assert (
        mqar.MqarTask().get_config().to_dict() == configs.load("mqar_lstm")[1].to_dict()
    )

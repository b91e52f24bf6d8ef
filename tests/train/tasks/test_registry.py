"""The task registry: a new task is one object, registered, and then trains
through the trainer and train_and_evaluate like a built-in one."""

import jax
import ml_collections
import numpy as np
import pytest

from rnnjax import data
from rnnjax.configs import base
from rnnjax.train import Trainer, experiment, losses, metrics, schema, tasks
from rnnjax.train.tasks.base import TaskData, checked_split, require, rng


class RunningSum:
    """A toy task: the running sum of a noise input, scored at every step."""

    name = "running_sum"
    paths = ()
    vocabulary = False

    def get_config(self):
        config = base.get_config()
        config.task = self.name
        config.data = ml_collections.ConfigDict({"eval_batches": 2})
        config.model.hidden_size = 8
        config.batch_size = 4
        config.seq_len = 6
        config.steps = 2
        config.eval_every = 1
        config.checkpoint_every = 2
        config.log_every = 1
        config.keep = 2
        return config

    def check(self, config):
        batches = config.data.eval_batches
        require(config, "data.eval_batches", batches >= 1, "an int >= 1")

    def load(self, config, vocab=None):
        def batch(gen):
            x = gen.standard_normal((config.batch_size, config.seq_len, 1))
            x = x.astype(np.float32)
            mask = np.ones(x.shape[:2], np.float32)
            return data.Batch(x, np.cumsum(x, axis=1), mask)

        def eval_batches(split):
            stream = {"valid": 1, "test": 2}[split]
            return [
                batch(rng(config.seed, stream, i))
                for i in range(config.data.eval_batches)
            ]

        return TaskData(
            lambda step: batch(rng(config.seed, 0, step)), checked_split(eval_batches)
        )

    def sizes(self, config, vocab):
        return 1, 1, False

    def seq_lengths(self, batch):
        return None

    def loss(self, outputs, batch):
        return losses.mse(outputs, batch.targets, batch.mask)

    def eval_sums(self, outputs, batch):
        return {}

    def summary(self, loss, totals):
        return {"loss": loss, "mse": loss}


@pytest.fixture
def running_sum():
    task = tasks.register(RunningSum())
    yield task
    del tasks.TASKS[task.name]


def test_the_built_in_tasks():
    assert sorted(tasks.TASKS) == ["adding", "char", "jsb", "mqar", "temporal_order"]
    for name, task in tasks.TASKS.items():
        assert isinstance(task, tasks.Task) and task.name == name
        assert task.get_config().task == name


def test_a_new_task_trains_through_the_trainer(running_sum, tmp_path, fast_compile):
    config = running_sum.get_config()
    schema.check_config(config)
    exp = experiment.build(config)
    assert exp.task is running_sum and exp.model.output_size == 1
    trainer = Trainer(exp)
    state = trainer.init_state()
    for s in range(2):
        batch = exp.data.train_batch(s)
        key = jax.random.fold_in(jax.random.key(0), s)
        state, step_metrics = trainer.train_step(state, batch, key)
        assert np.isfinite(float(step_metrics["loss"]))
    assert int(state.step) == 2
    results = trainer.evaluate(state.params, "valid")
    assert set(results) == {"loss", "mse"} and np.isfinite(results["mse"])

    # And the whole run: train_and_evaluate, then load_run from the folder.
    out = experiment.train_and_evaluate(config, tmp_path / "run", progress=False)
    assert set(out["test"]) == {"loss", "mse"} and "samples" not in out
    records = metrics.read(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2]
    _, state, step = experiment.load_run(tmp_path / "run")
    assert step == 2 and int(state.step) == 2


def test_its_config_is_checked_against_its_own_schema(running_sum):
    config = running_sum.get_config()
    config.data.eval_batches = 0
    with pytest.raises(ValueError, match=r"config\.data\.eval_batches: expected"):
        schema.check_config(config)
    config = running_sum.get_config()
    config.data.text_path = "x.txt"
    with pytest.raises(ValueError, match=r"config\.data\.text_path: unknown key"):
        schema.check_config(config)


def test_register_refuses_a_taken_name_and_a_partial_task(running_sum):
    with pytest.raises(ValueError, match="'running_sum' is taken by RunningSum"):
        tasks.register(RunningSum())
    tasks.register(running_sum)  # the same object again: a no-op

    class Partial:
        name = "partial"

    with pytest.raises(TypeError, match="without paths, vocabulary, get_config"):
        tasks.register(Partial())
    assert "partial" not in tasks.TASKS
    with pytest.raises(ValueError, match=r"config\.task: expected one of \["):
        tasks.get("partial")

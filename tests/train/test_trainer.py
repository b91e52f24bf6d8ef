"""The trainer: owns its jitted functions (each traced once), checks the
arguments of generation, and splits by shard_map only on several CPU devices."""

import jax
import pytest

from rnnjax.train import Trainer, experiment, tasks, trainer
from tests.train._configs import tiny
from tests.train.tasks.test_registry import RunningSum


class Counted(RunningSum):
    """RunningSum that counts how often the model is traced."""

    name = "running_sum_counted"
    traces = 0

    def seq_lengths(self, batch):
        type(self).traces += 1
        return None


@pytest.fixture
def counted():
    task = tasks.register(Counted())
    yield task
    del tasks.TASKS[task.name]


def test_each_function_is_traced_once_per_trainer(counted):
    exp = experiment.build(counted.get_config())
    run = Trainer(exp)
    Counted.traces = 0
    state = run.init_state()
    for s in range(2):
        state, _ = run.train_step(state, exp.data.train_batch(s), jax.random.key(s))
        run.evaluate(state.params, "valid")
        run.evaluate(state.params, "test")
    assert Counted.traces == 2  # the train step and the evaluation sums
    Trainer(exp).evaluate(state.params, "valid")  # a new trainer compiles anew
    assert Counted.traces == 3


@pytest.mark.parametrize(
    "prompt, options, match",
    [
        ("", {"length": 1}, "prompt: expected at least one character"),
        ("d", {"length": 0}, "length: expected an int >= 1, got 0"),
        ("d", {"length": True}, "length: expected an int >= 1, got True"),
        ("d", {"length": 1, "num_samples": 0}, "num_samples: expected an int >= 1"),
        ("d", {"length": 1, "temperature": -1.0}, "temperature: expected a float"),
        ("d@", {"length": 1}, "prompt: character '@' is not in the vocabulary"),
    ],
)
def test_generate_checks_its_arguments(text_file, prompt, options, match):
    exp = experiment.build(tiny("char_lstm", text_file))
    with pytest.raises(ValueError, match=match):
        Trainer(exp).generate(None, prompt, **options)


def test_evaluate_needs_data(text_file):
    config = tiny("char_lstm", text_file)
    vocab = experiment.build(config).vocab
    exp = experiment.build(config, with_data=False, vocab=vocab)
    with pytest.raises(ValueError, match="exp: built without data"):
        Trainer(exp).evaluate(None, "valid")
    with pytest.raises(ValueError, match="vocab: a char model built without data"):
        experiment.build(config, with_data=False)


def test_shard_map_mesh_and_format():
    assert trainer.shard_map_mesh(None) is None
    one = jax.make_mesh((1,), ("batch",))
    assert trainer.shard_map_mesh(one) is None
    assert trainer.format_metrics({"loss": 1.0, "bpc": 0.5}) == (
        "loss 1.0000  bpc 0.5000"
    )

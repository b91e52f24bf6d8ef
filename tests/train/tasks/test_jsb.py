"""The JSB Chorales task: windows, whole chorales in evaluation, the untrained
model's NLL."""

import json

import numpy as np
import pytest

from rnnjax import configs
from rnnjax.train import experiment
from tests.train._configs import JSB, tiny


def test_jsb_build_and_evaluate(tmp_path):
    """On the local copy beside the checkout where there is one, else the shipped
    copy (``data.path`` empty)."""
    path = str(JSB) if JSB.exists() else ""
    config = tiny("jsb_gru", extra=[("data.path", path), ("batch_size", "32")])
    exp = experiment.build(config)
    batch = exp.data.train_batch(0)
    assert batch.inputs.shape == (32, 16, 88)
    params = experiment.init_state(exp).params
    results = experiment.evaluate(exp, params, "test")
    # An untrained model predicts about 0.5 for every note: 88 * log 2 nats.
    assert results["nll"] == pytest.approx(88 * np.log(2), rel=0.1)
    too_long = configs.override(config, [("seq_len", "500")])
    with pytest.raises(ValueError, match=r"config\.seq_len: 500 is longer than the"):
        experiment.build(too_long)


def test_a_small_file(tmp_path):
    """A file of a few chorales: padded evaluation rows are not scored."""
    rng = np.random.default_rng(0)

    def song(n):
        return [rng.choice(np.arange(40, 80), 3).tolist() for _ in range(n)]

    splits = {"train": [song(30), song(25)], "valid": [song(9)], "test": [song(7)]}
    path = tmp_path / "jsb.json"
    path.write_text(json.dumps(splits))
    config = tiny("jsb_gru", extra=[("data.path", str(path)), ("seq_len", "12")])
    exp = experiment.build(config)
    assert exp.data.train_batch(0).inputs.shape == (4, 12, 88)
    (test,) = exp.data.eval_batches("test")
    assert test.inputs.shape == (4, 6, 88)
    assert test.mask.sum(axis=1).tolist() == [6, 0, 0, 0]
    results = experiment.evaluate(exp, experiment.init_state(exp).params, "test")
    assert set(results) == {"loss", "nll"} and results["loss"] == results["nll"]
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({**splits, "valid": []}))
    with pytest.raises(ValueError, match="has no 'valid' chorales"):
        experiment.build(configs.override(config, [("data.path", str(empty))]))


def test_jsb_config_runs_from_any_directory_on_the_shipped_data(
    tmp_path, monkeypatch, fast_compile
):
    """The JSB configs' default data is the copy rnnjax ships: they train offline
    from any directory, and the saved config keeps the empty path."""
    monkeypatch.chdir(tmp_path)
    _, config = configs.load("jsb_lstm")
    assert config.data.path == ""
    config = tiny("jsb_lstm", extra=[("model.hidden_size", "8"), ("steps", "2")])
    results = experiment.train_and_evaluate(config, "run", progress=False)
    assert np.isfinite(results["test"]["nll"])
    assert experiment.load_run("run")[0].config.data.path == ""


def test_a_missing_jsb_file_is_named(tmp_path):
    config = tiny("jsb_lstm", extra=[("data.path", str(tmp_path / "none.json"))])
    with pytest.raises(FileNotFoundError, match=r"config\.data\.path: no such file"):
        experiment.build(config)

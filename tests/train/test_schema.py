"""Config checks: every bad config is refused, naming the key, before any file is
written."""

import pytest

from rnnjax.train import experiment, schema
from tests.train._configs import bad, tiny


@pytest.mark.parametrize(
    "key, value, error, match",
    [
        ("model.hiden_size", 3, ValueError, r"config\.model\.hiden_size: unknown key"),
        (
            "model.hidden_size",
            "big",
            TypeError,
            r"model\.hidden_size: expected a int, got str",
        ),
        ("model.hidden_size", 0, ValueError, r"model\.hidden_size: expected a pos"),
        ("model.cell", "lstn", ValueError, r"config\.model\.cell: expected one of"),
        ("optimizer.name", "adamm", ValueError, r"optimizer\.name"),
        ("keep", 1, ValueError, r"config\.keep: expected an int >= 2"),
        ("task", "music", ValueError, r"config\.task: expected one of"),
        ("model.impl", "associative", ValueError, "impl"),  # caught by the dry run
        ("seq_len", 10_000, ValueError, r"config\.seq_len: 10000 is longer"),
        ("model.cell", "lstm(peep=True)", ValueError, r"lstm\(\) has no option 'peep'"),
        ("model.cell", "lstm(4)", ValueError, r"config\.model\.cell: expected one"),
        ("model.cell", "lstm(x=y)", ValueError, r"keyword options"),
        ("model.cell", "lstm(hidden_size=4)", ValueError, "no option 'hidden_size'"),
        # Caught by the cell itself, at build time.
        ("model.cell", "lstm(coupled=True, forget_gate=False)", ValueError, "coupled"),
    ],
)
def test_bad_config_writes_nothing(tmp_path, text_file, key, value, error, match):
    config = bad(tiny("char_lstm", text_file), key, value)
    workdir = tmp_path / "run"
    with pytest.raises(error, match=match):
        experiment.train_and_evaluate(config, workdir)
    assert not workdir.exists()


@pytest.mark.parametrize(
    "name, key, value, match",
    [
        ("char_lstm", "data.valid_fraction", 1.5, r"data\.valid_fraction: expected"),
        ("char_lstm", "data.test_fraction", 0.0, r"data\.test_fraction: expected"),
        ("char_lstm", "data.test_fraction", 0.96, r"less than 1 - data\.valid"),
        ("char_lstm", "sample.temperature", -1.0, r"sample\.temperature: expected"),
        ("adding_lstm", "seq_len", 10, r"config\.seq_len: expected an int >= 11"),
        ("adding_lstm", "data.eval_batches", 0, r"data\.eval_batches: expected"),
        ("temporal_order_lstm", "seq_len", 19, r"seq_len: expected an int >= 20"),
        ("jsb_lstm", "data.extra", 1, r"config\.data\.extra: unknown key"),
        ("adding_lstm", "sample", {}, r"config\.sample: unknown key"),
    ],
)
def test_each_task_checks_its_own_keys(name, key, value, match):
    with pytest.raises(ValueError, match=match):
        schema.check_config(bad(tiny(name), key, value))


def test_resolved_makes_the_task_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tiny("char_lstm", "tiny.txt")
    assert schema.resolved(config).data.text_path == str(tmp_path / "tiny.txt")
    assert config.data.text_path == "tiny.txt"  # a copy
    config = tiny("jsb_lstm", extra=[("data.path", "x/jsb.json")])
    assert schema.resolved(config).data.path == str(tmp_path / "x" / "jsb.json")


def test_a_config_that_is_not_a_configdict():
    with pytest.raises(TypeError, match="config: expected an ml_collections"):
        schema.check_config({"task": "char"})

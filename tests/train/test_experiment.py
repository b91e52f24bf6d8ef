"""train_and_evaluate and its pieces: config checks before any file is written,
deterministic batches, tiny runs of each task, resume, evaluation and sampling."""

import json
import os
import pathlib
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from rnnjax import configs
from rnnjax.train import checkpoint, experiment
from rnnjax.train import metrics as metrics_lib

ROOT = pathlib.Path(__file__).resolve().parents[2]
JSB = ROOT.parent / "shared" / "data" / "jsb-chorales-quarter.json"
TEXT = "def add(a, b):\n    return a + b\n\n" * 60

TINY = [
    ("model.hidden_size", "16"),
    ("batch_size", "4"),
    ("seq_len", "16"),
    ("steps", "4"),
    ("eval_every", "2"),
    ("checkpoint_every", "2"),
    ("log_every", "2"),
    ("keep", "2"),
    ("optimizer.schedule", "constant"),  # resuming with more steps: no recompile
    ("optimizer.warmup_steps", "0"),
]


def tiny(name, text_path=None, extra=()):
    _, config = configs.load(name)
    pairs = list(TINY)
    if text_path is not None:
        pairs += [("data.text_path", str(text_path)), ("sample.length", "10")]
    return configs.override(config, pairs + list(extra))


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def bad(config, key, value):
    """``config`` with ``key`` set to ``value``, past ConfigDict's own checks."""
    tree = config.to_dict()
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value
    return ml_collections.ConfigDict(tree)


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
    "content, match",
    [(b"", "the file is empty"), (b"ab\xffcd", "not UTF-8"), (None, "no such file")],
)
def test_bad_text_file_is_named(tmp_path, content, match):
    path = tmp_path / "bad.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises((ValueError, FileNotFoundError), match=match) as info:
        experiment.build(tiny("char_lstm", path))
    assert str(path) in str(info.value)


def test_batches_depend_on_seed_and_step_only(text_file):
    a = experiment.build(tiny("char_lstm", text_file)).task
    b = experiment.build(tiny("char_lstm", text_file)).task
    pairs = zip(a.train_batch(3), b.train_batch(3), strict=True)
    assert all(np.array_equal(x, y) for x, y in pairs)
    assert not np.array_equal(a.train_batch(3).inputs, a.train_batch(4).inputs)
    batch = a.train_batch(0)
    assert batch.inputs.shape == batch.targets.shape == (4, 16)
    assert np.array_equal(batch.inputs[:, 1:], batch.targets[:, :-1])
    valid = a.eval_batches("valid")
    assert all(b.inputs.shape == (4, 16) for b in valid)


@pytest.mark.slow
def test_char_run_resume_eval_and_sample(tmp_path, text_file):
    workdir = tmp_path / "run"
    config = tiny("char_lstm", text_file)
    results = experiment.train_and_evaluate(config, workdir, progress=False)
    assert {p.name for p in workdir.iterdir()} >= {
        "config.json",
        "vocab.json",
        "checkpoints",
        "metrics.jsonl",
        "tensorboard",
        "curves.png",
    }
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    records = metrics_lib.read(workdir / "metrics.jsonl")
    assert [r["step"] for r in records if r["split"] == "train"] == [2, 4]
    assert {r["split"] for r in records} == {"train", "valid", "test"}
    assert np.isfinite(results["test"]["bpc"])
    assert all(s.startswith("def ") and len(s) == 14 for s in results["samples"])
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["data"]["text_path"] == str(text_file)

    with pytest.raises(ValueError, match="is not empty; pass --resume"):
        experiment.train_and_evaluate(config, workdir)
    changed = configs.override(config, [("model.hidden_size", "8")])
    with pytest.raises(ValueError, match=r"model\.hidden_size: 16 in the run, 8 now"):
        experiment.train_and_evaluate(changed, workdir, resume=True)
    # More steps on resume: the loop keys may change.
    longer = configs.override(config, [("steps", "6")])
    experiment.train_and_evaluate(longer, workdir, resume=True, progress=False)
    records = metrics_lib.read(workdir / "metrics.jsonl")
    assert [r["step"] for r in records if r["split"] == "train"] == [2, 4, 6]

    exp, state, step = experiment.load_run(workdir)
    assert step == 6 and int(state.step) == 6
    test = experiment.evaluate(exp, state.params, "test")
    assert test["bpc"] == pytest.approx(test["loss"] / np.log(2))
    greedy = [
        experiment.generate(exp, state.params, "def", length=12, temperature=0)
        for _ in range(2)
    ]
    assert greedy[0] == greedy[1] and len(greedy[0][0]) == 15
    with pytest.raises(ValueError, match="'@' is not in the vocabulary"):
        experiment.generate(exp, state.params, "a@", length=3)

    # A damaged newest checkpoint: skipped with a warning naming the file.
    manifest = workdir / "checkpoints" / "6" / checkpoint.MANIFEST
    manifest.write_text("{not json")
    with pytest.warns(checkpoint.CheckpointWarning, match=str(manifest)):
        _, state, step = experiment.load_run(workdir, with_data=False)
    assert step == 4 and int(state.step) == 4


@pytest.mark.skipif(not JSB.exists(), reason=f"JSB Chorales not found at {JSB}")
def test_jsb_build_and_evaluate(tmp_path):
    config = tiny("jsb_gru", extra=[("data.path", str(JSB)), ("batch_size", "32")])
    exp = experiment.build(config)
    batch = exp.task.train_batch(0)
    assert batch.inputs.shape == (32, 16, 88)
    params = experiment.init_state(exp).params
    results = experiment.evaluate(exp, params, "test")
    # An untrained model predicts about 0.5 for every note: 88 * log 2 nats.
    assert results["nll"] == pytest.approx(88 * np.log(2), rel=0.1)
    too_long = configs.override(config, [("seq_len", "500")])
    with pytest.raises(ValueError, match=r"config\.seq_len: 500 is longer than the"):
        experiment.build(too_long)


MULTI_DEVICE = """
import json, pytest
from rnnjax import configs
from rnnjax.train import experiment
import jax
assert jax.device_count() == 2
_, config = configs.load("adding_lstm")
pairs = {pairs!r}
with pytest.raises(ValueError, match="batch_size: 3 is not a multiple of the 2"):
    experiment.build(configs.override(config, pairs + [("batch_size", "3")]))
exp = experiment.build(configs.override(config, pairs))
with pytest.raises(ValueError, match="only a char model generates text"):
    experiment.generate(exp, None, "x", length=1)
results = experiment.train_and_evaluate(
    configs.override(config, pairs), {workdir!r}, progress=False
)
print("RESULTS", json.dumps(results))
"""


@pytest.mark.slow
def test_adding_on_two_devices(tmp_path):
    """The adding task, trained data-parallel over two (host) devices."""
    pairs = [*TINY, ("seq_len", "12"), ("data.eval_batches", "2")]
    code = MULTI_DEVICE.format(pairs=pairs, workdir=str(tmp_path / "run"))
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(ROOT),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("RESULTS")]
    results = json.loads(line.removeprefix("RESULTS"))
    assert set(results["test"]) == {"loss", "mse", "accuracy"}
    assert 0 <= results["test"]["accuracy"] <= 1
    assert "samples" not in results


def test_cell_options_reach_the_cell():
    config = tiny(
        "adding_lstm", extra=[("model.cell", "lstm(peephole=True, forget_bias=0.0)")]
    )
    assert experiment.cell_spec(config.model.cell) == (
        "lstm",
        {"peephole": True, "forget_bias": 0.0},
    )
    cell = experiment.build(config).model.stack.cells[0]
    assert cell.peephole and cell.forget_bias == 0.0
    assert experiment.cell_spec(" gru ") == ("gru", {})


def test_temporal_order_run_and_metrics(tmp_path):
    extra = [("seq_len", "20"), ("data.eval_batches", "2"), ("data.num_relevant", "3")]
    config = tiny("temporal_order_lstm", extra=extra)
    exp = experiment.build(config)
    batch = exp.task.train_batch(0)
    assert batch.inputs.shape[0] == 4 and batch.inputs.shape[2] == 8
    results = experiment.train_and_evaluate(config, tmp_path / "run", progress=False)
    assert set(results["test"]) == {"loss", "accuracy", "solved"}
    assert 0 <= results["test"]["solved"] <= results["test"]["accuracy"] <= 1
    # The paper's criterion: every output within 0.3 of the one-hot target.
    logits = np.where(np.eye(8)[batch.targets] > 0, 5.0, 0.0)  # p(target) ~ 0.95
    counts = experiment._order_hits(logits, batch)
    assert int(counts["solved"]) == int(counts["hits"]) == 4
    counts = experiment._order_hits(logits / 5.0, batch)  # p(target) ~ 0.28
    assert int(counts["solved"]) == 0 and int(counts["hits"]) == 4
    bad_config = configs.override(config, [("data.num_relevant", "4")])
    with pytest.raises(ValueError, match=r"config\.data\.num_relevant: expected 2"):
        experiment.build(bad_config)

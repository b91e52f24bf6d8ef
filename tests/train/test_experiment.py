"""train_and_evaluate end to end: a run, its folder, resume, evaluation and
sampling, and data parallelism over two devices. (The pieces have their own
tests: test_schema, test_model, test_trainer, test_runs, tasks/.)"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rnnjax import configs
from rnnjax.train import checkpoint, experiment
from rnnjax.train import metrics as metrics_lib
from tests.conftest import FAST_COMPILE
from tests.train._configs import ROOT, TINY, tiny


@pytest.mark.slow
def test_char_run_resume_eval_and_sample(tmp_path, text_file, fast_compile):
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
        **FAST_COMPILE,
        "PYTHONPATH": str(ROOT),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("RESULTS")]
    results = json.loads(line.removeprefix("RESULTS"))
    assert set(results["test"]) == {"loss", "mse", "solved"}
    assert 0 <= results["test"]["solved"] <= 1
    assert "samples" not in results


def test_resume_without_a_checkpoint_says_it_starts_afresh(tmp_path, capsys):
    config = tiny("adding_lstm", extra=[("steps", "1"), ("data.eval_batches", "1")])
    config = configs.override(config, [("seq_len", "12")])
    workdir = tmp_path / "run"
    experiment.train_and_evaluate(config, workdir, resume=True, progress=False)
    assert f"no checkpoint in {workdir}: starting at step 0" in capsys.readouterr().out

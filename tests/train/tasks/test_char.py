"""The char task: the text file named in errors, batches of (seed, step) only,
and its metrics."""

import math

import numpy as np
import pytest

from rnnjax.train import experiment, tasks
from tests.train._configs import tiny


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
    a = experiment.build(tiny("char_lstm", text_file)).data
    b = experiment.build(tiny("char_lstm", text_file)).data
    pairs = zip(a.train_batch(3), b.train_batch(3), strict=True)
    assert all(np.array_equal(x, y) for x, y in pairs)
    assert not np.array_equal(a.train_batch(3).inputs, a.train_batch(4).inputs)
    batch = a.train_batch(0)
    assert batch.inputs.shape == batch.targets.shape == (4, 16)
    assert np.array_equal(batch.inputs[:, 1:], batch.targets[:, :-1])
    valid = a.eval_batches("valid")
    assert all(b.inputs.shape == (4, 16) for b in valid)
    with pytest.raises(ValueError, match="split: expected 'valid' or 'test'"):
        a.eval_batches("train")


def test_summary_in_bits_per_character():
    task = tasks.get("char")
    assert task.summary(math.log(2), {"loss": 1.0, "count": 1}) == {
        "loss": math.log(2),
        "bpc": 1.0,
    }
    assert task.vocabulary and task.paths == ("text_path",)


def test_valid_and_test_are_consecutive_held_out_parts(tmp_path):
    """Three splits in order: training, valid, then test; the test figure is not
    the valid one."""
    path = tmp_path / "text.txt"
    chars = np.random.default_rng(0).choice(list("abcdefgh \n"), 4000)
    path.write_text("".join(chars), encoding="utf-8")
    exp = experiment.build(tiny("char_lstm", path))
    valid, test = (exp.data.eval_batches(s) for s in ("valid", "test"))
    ids = exp.vocab.encode(path.read_text(encoding="utf-8"))
    n = len(ids)
    test_ids, valid_ids = ids[n - 200 :], ids[n - 400 : n - 200]  # 5 % each
    assert np.array_equal(test[0].inputs[0], test_ids[:16])
    assert np.array_equal(valid[0].inputs[0], valid_ids[:16])
    assert "train 3,600 / valid 200 / test 200" in exp.data.splits
    params = experiment.init_state(exp).params
    scores = [experiment.evaluate(exp, params, s)["bpc"] for s in ("valid", "test")]
    assert scores[0] != scores[1]

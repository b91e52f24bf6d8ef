"""Run folders: a used folder is refused unless resuming; a resumed run keeps its
config (but for the loop keys) and its vocabulary."""

import json

import pytest

from rnnjax import configs, data
from rnnjax.train import runs
from tests.train._configs import tiny


def test_prepare_writes_the_config_and_the_vocab(tmp_path):
    config = tiny("char_lstm", "x.txt")
    vocab = data.CharVocab(("a", "b"))
    runs.prepare(tmp_path / "run", config, vocab, resume=False)
    assert runs.saved_config(tmp_path / "run").to_dict() == config.to_dict()
    assert runs.saved_vocab(tmp_path / "run").chars == ("a", "b")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        runs.CONFIG_JSON,
        runs.VOCAB_JSON,
    ]
    with pytest.raises(ValueError, match="is not empty; pass --resume"):
        runs.prepare(tmp_path / "run", config, vocab, resume=False)
    # Resuming: the loop keys may change, nothing else.
    longer = configs.override(config, [("steps", "9"), ("keep", "5")])
    runs.prepare(tmp_path / "run", longer, vocab, resume=True)
    wider = configs.override(config, [("model.hidden_size", "8")])
    with pytest.raises(ValueError, match=r"model\.hidden_size: 16 in the run, 8 now"):
        runs.check_resumable(tmp_path / "run", wider, vocab)
    other = data.CharVocab(("a", "c"))
    with pytest.raises(ValueError, match=r"vocab\.json: the text's characters differ"):
        runs.check_resumable(tmp_path / "run", longer, other)


def test_folder_errors_name_the_file(tmp_path):
    (tmp_path / "file").write_text("x")
    config = tiny("adding_lstm")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        runs.prepare(tmp_path / "file", config, None, resume=True)
    with pytest.raises(FileNotFoundError, match="not an rnnjax run directory"):
        runs.saved_config(tmp_path)
    (tmp_path / runs.VOCAB_JSON).write_text("[not json")
    with pytest.raises(ValueError, match=r"vocab\.json: not readable JSON"):
        runs.saved_vocab(tmp_path)
    (tmp_path / runs.VOCAB_JSON).write_text(json.dumps(["a"]))
    assert runs.saved_vocab(tmp_path).chars == ("a",)

"""Tiny configs shared by the experiment tests (tests/train/ and its tasks/)."""

import pathlib

import ml_collections

from rnnjax import configs

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
    ("optimizer.schedule", "constant"),
    ("optimizer.warmup_steps", "0"),
]


def tiny(name, text_path=None, extra=()):
    _, config = configs.load(name)
    pairs = list(TINY)
    if "kind" in config.model:  # an xLSTM model: its width, one head
        pairs[0] = ("model.xlstm.embedding_dim", "16")
        pairs.append(("model.xlstm.num_heads", "1"))
    if text_path is not None:
        pairs += [("data.text_path", str(text_path)), ("sample.length", "10")]
    return configs.override(config, pairs + list(extra))


def write_text(tmp_path):
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

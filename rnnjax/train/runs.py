"""Run directories: what a run writes before training, and the rules of resuming.

A run directory holds:

- ``config.json``: the resolved config (data paths made absolute);
- ``vocab.json``: the characters of a model on text, in id order;
- ``checkpoints/<step>/``: Orbax checkpoints of the
  `TrainState` (`rnnjax.train.checkpoint`);
- ``metrics.jsonl``, ``tensorboard/``, ``curves.png``
  ([`rnnjax.train.metrics`][rnnjax.train.metrics]).

A directory in use is refused unless resuming, and a resumed run must have the
config it was trained with except for `LOOP_KEYS`, and the same vocabulary.
"""

from __future__ import annotations

import json
import os
import pathlib

import ml_collections

from rnnjax import data

__all__ = [
    "CHECKPOINTS",
    "CONFIG_JSON",
    "LOOP_KEYS",
    "VOCAB_JSON",
    "check_resumable",
    "prepare",
    "saved_config",
    "saved_vocab",
]

#: Keys a resumed run may change: they steer the loop, not what it computes.
LOOP_KEYS = ("steps", "eval_every", "checkpoint_every", "keep", "log_every")

CONFIG_JSON = "config.json"
VOCAB_JSON = "vocab.json"
CHECKPOINTS = "checkpoints"


def _load_json(path: pathlib.Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: missing ({what})") from None
    except ValueError as e:
        raise ValueError(f"{path}: not readable JSON ({e})") from None


def saved_config(workdir) -> ml_collections.ConfigDict:
    """The config a run saved in ``workdir/config.json``."""
    path = pathlib.Path(workdir) / CONFIG_JSON
    return ml_collections.ConfigDict(_load_json(path, "not an rnnjax run directory"))


def saved_vocab(workdir) -> data.CharVocab:
    """The vocabulary a run saved in ``workdir/vocab.json``."""
    chars = _load_json(pathlib.Path(workdir) / VOCAB_JSON, "the run's vocabulary")
    return data.CharVocab(tuple(chars))


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def check_resumable(workdir, config, vocab: data.CharVocab | None) -> None:
    """Raises ``ValueError`` naming the keys unless ``config`` equals the one
    ``workdir`` was trained with (but for `LOOP_KEYS`), and naming the file
    unless ``vocab`` (when not ``None``) equals the run's."""
    workdir = pathlib.Path(workdir)
    saved = _flat(saved_config(workdir).to_dict())
    now = _flat(config.to_dict())
    changed = [
        f"{k}: {saved.get(k)!r} in the run, {now.get(k)!r} now"
        for k in sorted(set(saved) | set(now))
        if saved.get(k) != now.get(k) and k not in LOOP_KEYS
    ]
    if changed:
        raise ValueError(
            f"config: differs from the one {workdir} was trained with, in "
            f"{'; '.join(changed)} (a resumed run may change only {LOOP_KEYS})"
        )
    if vocab is not None:
        chars = _load_json(workdir / VOCAB_JSON, "the run's vocabulary")
        if tuple(chars) != vocab.chars:
            raise ValueError(
                f"{workdir / VOCAB_JSON}: the text's characters differ from the ones "
                f"the run was trained on"
            )


def _write_json(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def prepare(workdir, config, vocab: data.CharVocab | None, resume: bool) -> None:
    """Refuses a ``workdir`` in use unless ``resume`` (then checks that the run
    can be resumed with ``config`` and ``vocab``); creates it and saves the config
    (and the vocabulary)."""
    workdir = pathlib.Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise ValueError(f"workdir: {workdir} exists and is not a directory")
    used = workdir.is_dir() and any(workdir.iterdir())
    if used and not resume:
        raise ValueError(
            f"workdir: {workdir} is not empty; pass --resume to continue the run in "
            f"it, or choose another --workdir"
        )
    if used:
        check_resumable(workdir, config, vocab)
    workdir.mkdir(parents=True, exist_ok=True)
    _write_json(workdir / CONFIG_JSON, config.to_json(indent=2) + "\n")
    if vocab is not None:
        _write_json(workdir / VOCAB_JSON, json.dumps(list(vocab.chars)) + "\n")

"""Polyphonic music: JSB Chorales piano rolls (Boulanger-Lewandowski et al., 2012).

Legend: ``B`` batch, ``T`` time; a piano roll has 88 notes (MIDI 21..108, column
``note - 21``).

The package ships the JSB Chorales at quarter-note resolution with the train /
valid / test split of Boulanger-Lewandowski, Vincent & Bengio (ICML 2012): 229 / 76
/ 77 chorales, 13,807 / 4,602 / 4,725 steps. The copy is the file
``jsb-chorales-quarter.json`` of the public repository
``czhuang/JSB-Chorales-dataset``, unchanged but for JSON white space, gzipped
(`JSB_SHA256` is the SHA-256 of the original file). ``load_jsb()`` with no
path reads it, so the JSB configs run offline from any directory.
"""

from __future__ import annotations

import gzip
import json
import numbers
import pathlib

import numpy as np

LOWEST_NOTE = 21
NUM_NOTES = 88
#: The shipped copy of the JSB Chorales (gzipped JSON; see the module docstring).
JSB_PATH = pathlib.Path(__file__).with_name("jsb_chorales_quarter.json.gz")
#: SHA-256 of the original ``jsb-chorales-quarter.json`` the shipped copy holds.
JSB_SHA256 = "2db9329f1881a1d3f49703ec556bf1d6f84b4f6c1d702c156536e93cf31e1c91"


def load_jsb(path=None) -> dict[str, list[np.ndarray]]:
    """The splits of a Boulanger-Lewandowski JSON file as binary piano rolls.

    The file (plain or gzipped, ``.gz``) maps split names (``train``, ``valid``,
    ``test``) to lists of chorales; a chorale is a list of steps, a step a list of
    the MIDI note numbers sounding (possibly none). ``path=None`` reads the copy
    shipped with rnnjax (`JSB_PATH`). Returns ``{split: [roll_i]}`` with each
    ``roll_i`` a ``(T_i, 88)`` float32 array, 1 at column ``note - 21``. A note
    outside ``21..108`` or not an integer is a ``ValueError`` naming the path,
    split, chorale, step and note.
    """
    path = JSB_PATH if path is None else pathlib.Path(path)
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, gzip.BadGzipFile) as e:
        raise ValueError(f"{path}: not a UTF-8 JSON file ({e})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object of splits")
    out = {}
    for split, chorales in raw.items():
        if not isinstance(chorales, list):
            raise ValueError(f"{path}: {split}: expected a list of chorales")
        rolls = []
        for i, chorale in enumerate(chorales):
            if not isinstance(chorale, list) or not all(
                isinstance(notes, list) for notes in chorale
            ):
                raise ValueError(
                    f"{path}: {split} chorale {i}: expected a list of steps, each a "
                    f"list of MIDI note numbers"
                )
            roll = np.zeros((len(chorale), NUM_NOTES), np.float32)
            for t, notes in enumerate(chorale):
                for n in notes:
                    ok = isinstance(n, numbers.Real) and not isinstance(n, bool)
                    if not ok or n != int(n) or not 21 <= n <= 108:
                        raise ValueError(
                            f"{path}: {split} chorale {i} step {t}: note {n!r} is not "
                            f"a MIDI note number in the piano range 21..108"
                        )
                    roll[t, int(n) - LOWEST_NOTE] = 1.0
            rolls.append(roll)
        out[split] = rolls
    return out


def pad_batch(rolls) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Next-step prediction batch from piano rolls, right-padded with zeros.

    For rolls of lengths ``T_i`` returns ``inputs`` ``(B, T, 88)`` float32 (steps
    ``0 .. T_i - 2`` of each roll), ``targets`` ``(B, T, 88)`` float32 (steps
    ``1 .. T_i - 1``) and ``lengths`` ``(B,)`` int32 ``= T_i - 1``, where
    ``T = max(T_i) - 1``; use ``lengths`` as ``seq_lengths`` and mask the loss with
    it (steps past a length are zero in both arrays).
    """
    rolls = list(rolls)
    if not rolls:
        raise ValueError("rolls: expected at least one piano roll")
    for i, r in enumerate(rolls):
        shape = np.shape(r)
        if len(shape) != 2 or shape[1] != NUM_NOTES or shape[0] < 2:
            raise ValueError(
                f"rolls[{i}]: expected shape (T, {NUM_NOTES}) with T >= 2, got {shape}"
            )
    lengths = np.array([np.shape(r)[0] - 1 for r in rolls], np.int32)
    t = int(lengths.max())
    inputs = np.zeros((len(rolls), t, NUM_NOTES), np.float32)
    targets = np.zeros_like(inputs)
    for i, r in enumerate(rolls):
        r = np.asarray(r, np.float32)
        inputs[i, : lengths[i]] = r[:-1]
        targets[i, : lengths[i]] = r[1:]
    return inputs, targets, lengths

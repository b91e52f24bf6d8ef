"""Character-level text: a vocabulary, a loader, a built-in corpus and batches.

Legend: ``B`` batch, ``T`` time (``seq_len``). Ids are int32.
"""

from __future__ import annotations

import os
import pathlib
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from rnnjax.data._rng import as_generator, check_int


@dataclass(frozen=True)
class CharVocab:
    """The sorted unique characters of a text; id ``i`` is ``chars[i]``.

    Build one with ``CharVocab.from_text(text)``; ``encode`` and ``decode`` are
    inverses on any text made of these characters.
    """

    chars: tuple[str, ...]

    def __post_init__(self):
        if list(self.chars) != sorted(set(self.chars)):
            raise ValueError("chars: expected sorted unique characters")
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(self.chars)})

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The vocabulary of the distinct characters of a non-empty ``text``."""
        if not text:
            raise ValueError("text: expected a non-empty string")
        return cls(tuple(sorted(set(text))))

    @property
    def size(self) -> int:
        """The number of characters (ids run from 0 to ``size - 1``)."""
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """``(len(text),)`` int32 ids; a character outside the vocabulary is an
        error naming it."""
        try:
            return np.fromiter(
                (self._index[c] for c in text), dtype=np.int32, count=len(text)
            )
        except KeyError as e:
            raise ValueError(
                f"text: character {e.args[0]!r} is not in the vocabulary"
            ) from None

    def decode(self, ids) -> str:
        """The text of a sequence of ids (any integer array-like, flattened)."""
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.chars)):
            raise ValueError(
                f"ids: expected values in [0, {len(self.chars)}), got "
                f"[{ids.min()}, {ids.max()}]"
            )
        return "".join(self.chars[i] for i in ids.tolist())


def load_text(path) -> str:
    """The contents of a UTF-8 text file.

    Raises ``ValueError`` naming the path for an empty file or bytes that are not
    UTF-8 (with the byte offset); a missing file raises ``FileNotFoundError``.
    """
    path = pathlib.Path(path)
    data = path.read_bytes()
    if not data:
        raise ValueError(f"{path}: the file is empty")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path}: not UTF-8 text (byte {e.start}: {data[e.start : e.end]!r})"
        ) from None


def default_corpus(max_chars: int = 1_000_000) -> str:
    """A built-in corpus needing no download: the Python standard library's source.

    Concatenates the ``.py`` files directly in ``sysconfig.get_paths()["stdlib"]``,
    sorted by name, skipping any that are not UTF-8, and cuts the result to
    ``max_chars`` characters. Deterministic for a given Python version (the text
    differs between Python versions).
    """
    max_chars = check_int(max_chars, "max_chars", 1)
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.glob("*.py") if p.is_file())
    parts, total = [], 0
    for p in files:
        try:
            text = p.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        parts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    if not parts:
        raise FileNotFoundError(
            f"default_corpus: no readable .py files in the standard library at "
            f"{os.fspath(stdlib)}; pass your own text to load_text instead"
        )
    return "".join(parts)[:max_chars]


def batches(
    ids, batch_size: int, seq_len: int, rng
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of next-character ``(inputs, targets)`` pairs, each ``(B, T)`` int32.

    ``ids`` (1-D) is cut into ``(len(ids) - 1) // seq_len`` non-overlapping windows;
    window ``k`` gives ``inputs = ids[k*T : k*T + T]`` and
    ``targets = ids[k*T + 1 : k*T + T + 1]``. The windows are shuffled with ``rng``
    (an int seed, a ``numpy.random.Generator`` or a JAX key) and grouped into full
    batches; a last partial batch is dropped. Arguments are checked when this is
    called, not at the first ``next``.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(
            f"ids: expected a 1-D integer array, got {ids.dtype} {ids.shape}"
        )
    batch_size = check_int(batch_size, "batch_size", 1)
    seq_len = check_int(seq_len, "seq_len", 1)
    if seq_len > ids.shape[0] - 1:
        raise ValueError(
            f"seq_len: {seq_len} is longer than the data allows ({ids.shape[0]} ids "
            f"give at most {ids.shape[0] - 1} next-character pairs)"
        )
    windows = (ids.shape[0] - 1) // seq_len
    if batch_size > windows:
        raise ValueError(
            f"batch_size: {batch_size} is more than the {windows} windows of seq_len "
            f"{seq_len} in {ids.shape[0]} ids"
        )
    order = as_generator(rng, "rng").permutation(windows)
    ids = ids.astype(np.int32)
    offsets = np.arange(seq_len)

    def gen():
        for i in range(windows // batch_size):
            starts = order[i * batch_size : (i + 1) * batch_size] * seq_len
            idx = starts[:, None] + offsets[None, :]
            yield ids[idx], ids[idx + 1]

    return gen()

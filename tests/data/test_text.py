"""Character-level text: vocabulary round trip, loader errors, corpus, batches."""

import jax
import numpy as np
import pytest

from rnnjax.data import CharVocab, batches, default_corpus, load_text

TEXT = "héllo wörld, ∑ → 🙂\nsecond line\n"


def test_vocab_round_trip():
    v = CharVocab.from_text(TEXT)
    assert list(v.chars) == sorted(set(TEXT)) and len(v) == v.size == len(set(TEXT))
    ids = v.encode(TEXT)
    assert ids.dtype == np.int32 and ids.shape == (len(TEXT),)
    assert v.decode(ids) == TEXT
    assert v.decode(ids.reshape(1, -1)) == TEXT
    assert v.encode("").shape == (0,) and v.decode([]) == ""


def test_vocab_errors():
    v = CharVocab.from_text("abc")
    with pytest.raises(ValueError, match=r"'z'"):
        v.encode("abz")
    with pytest.raises(ValueError, match=r"^ids:"):
        v.decode([0, 3])
    with pytest.raises(ValueError, match=r"^text:"):
        CharVocab.from_text("")
    with pytest.raises(ValueError, match=r"^chars:"):
        CharVocab(("b", "a"))


def test_load_text(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(TEXT.encode("utf-8"))
    assert load_text(path) == TEXT
    assert load_text(str(path)) == TEXT


def test_load_text_empty(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty") as e:
        load_text(path)
    assert str(path) in str(e.value)


def test_load_text_bad_bytes(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 ok".encode("latin-1"))
    with pytest.raises(ValueError, match=r"UTF-8") as e:
        load_text(path)
    assert str(path) in str(e.value) and "byte 3" in str(e.value)


def test_load_text_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_text(tmp_path / "nope.txt")


def test_default_corpus():
    text = default_corpus(max_chars=50_000)
    assert len(text) == 50_000
    assert text == default_corpus(max_chars=50_000)
    assert default_corpus(max_chars=1_000) == text[:1_000]
    assert "def " in text and "import " in text
    with pytest.raises(ValueError, match=r"^max_chars:"):
        default_corpus(max_chars=0)


def test_batches_next_character_pairs():
    ids = np.arange(101, dtype=np.int64)  # 100 pairs -> 10 windows of 10
    got = list(batches(ids, 3, 10, 0))
    assert len(got) == 3  # 10 windows, batches of 3, remainder dropped
    starts = []
    for x, y in got:
        assert x.shape == y.shape == (3, 10) and x.dtype == y.dtype == np.int32
        np.testing.assert_array_equal(y, x + 1)  # targets are the next ids
        np.testing.assert_array_equal(x, x[:, :1] + np.arange(10))  # contiguous
        starts += list(x[:, 0])
    assert len(set(starts)) == 9 and all(s % 10 == 0 for s in starts)
    assert starts != sorted(starts)  # shuffled


def test_batches_deterministic():
    ids = np.arange(1000)
    a = [x for x, _ in batches(ids, 4, 7, 5)]
    b = [x for x, _ in batches(ids, 4, 7, 5)]
    c = [x for x, _ in batches(ids, 4, 7, jax.random.key(5))]
    d = [x for x, _ in batches(ids, 4, 7, jax.random.key(5))]
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    np.testing.assert_array_equal(np.stack(c), np.stack(d))
    assert not np.array_equal(np.stack(a), np.stack(c))


def test_batches_errors():
    ids = np.arange(11)
    with pytest.raises(ValueError, match=r"^seq_len:.*longer than the data"):
        batches(ids, 1, 11, 0)  # raised at the call, not at next()
    list(batches(ids, 1, 10, 0))  # exactly fits
    with pytest.raises(ValueError, match=r"^batch_size:"):
        batches(ids, 3, 5, 0)
    with pytest.raises(ValueError, match=r"^seq_len:"):
        batches(ids, 1, 0, 0)
    with pytest.raises(ValueError, match=r"^ids:"):
        batches(np.zeros((2, 5), np.int32), 1, 2, 0)
    with pytest.raises(TypeError, match=r"^rng:"):
        batches(ids, 1, 2, "seed")


def test_corpus_to_batches():
    text = default_corpus(max_chars=5_000)
    v = CharVocab.from_text(text)
    x, y = next(batches(v.encode(text), 8, 64, 0))
    assert v.decode(x[0, 1:]) == v.decode(y[0, :-1])
    assert v.decode(x[0]) in text

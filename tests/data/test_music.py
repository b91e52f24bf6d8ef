"""JSB Chorales: the published split sizes, the encoding, and next-step batches."""

import gzip
import hashlib
import json
import pathlib

import numpy as np
import pytest

from rnnjax.data import load_jsb, music, pad_batch

ROOT = pathlib.Path(__file__).resolve().parents[2]
JSB = ROOT.parent / "shared" / "data" / "jsb-chorales-quarter.json"


def raw_jsb() -> dict:
    """The JSON of the local copy beside the checkout where there is one, else of
    the shipped one."""
    if JSB.exists():
        return json.loads(JSB.read_text())
    return json.loads(gzip.decompress(music.JSB_PATH.read_bytes()))


@pytest.fixture(scope="module")
def jsb():
    """The local copy beside the checkout where there is one, else the shipped one."""
    return load_jsb(JSB if JSB.exists() else None)


def test_split_sizes(jsb):
    sizes = {k: (len(v), sum(r.shape[0] for r in v)) for k, v in jsb.items()}
    assert sizes == {
        "train": (229, 13_807),
        "valid": (76, 4_602),
        "test": (77, 4_725),
    }


def test_encoding_matches_file(jsb):
    raw = raw_jsb()
    for split in ("train", "test"):
        for chorale, roll in zip(raw[split][:5], jsb[split][:5], strict=True):
            assert roll.shape == (len(chorale), 88) and roll.dtype == np.float32
            for step, row in zip(chorale, roll, strict=True):
                assert sorted(np.nonzero(row)[0] + 21) == sorted(set(step))
    allrolls = np.concatenate(jsb["train"])
    assert set(np.unique(allrolls)) == {0.0, 1.0}
    assert allrolls.sum(axis=1).max() <= 4


def test_pad_batch_on_jsb(jsb):
    rolls = jsb["valid"][:6]
    x, y, lengths = pad_batch(rolls)
    assert x.shape == y.shape == (6, max(r.shape[0] for r in rolls) - 1, 88)
    np.testing.assert_array_equal(lengths, [r.shape[0] - 1 for r in rolls])


def write(tmp_path, data):
    path = tmp_path / "jsb.json"
    path.write_text(json.dumps(data))
    return path


def test_load_small(tmp_path):
    path = write(tmp_path, {"train": [[[21, 108], [], [60]]], "test": []})
    out = load_jsb(path)
    assert out["test"] == []
    (roll,) = out["train"]
    expected = np.zeros((3, 88), np.float32)
    expected[0, [0, 87]] = 1
    expected[2, 39] = 1
    np.testing.assert_array_equal(roll, expected)


@pytest.mark.parametrize("note", [20, 109, 60.5, "60", True])
def test_note_out_of_range(tmp_path, note):
    path = write(tmp_path, {"train": [[[60]], [[62], [note]]]})
    with pytest.raises(ValueError, match=r"21\.\.108") as e:
        load_jsb(path)
    msg = str(e.value)
    assert str(path) in msg and "train chorale 1 step 1" in msg and repr(note) in msg


def test_pad_batch():
    a = np.eye(88, dtype=np.float32)[[0, 1, 2, 3]]
    b = np.eye(88, dtype=np.float32)[[5, 6]]
    x, y, lengths = pad_batch([a, b])
    assert x.shape == y.shape == (2, 3, 88) and lengths.dtype == np.int32
    np.testing.assert_array_equal(lengths, [3, 1])
    np.testing.assert_array_equal(x[0], a[:-1])
    np.testing.assert_array_equal(y[0], a[1:])
    np.testing.assert_array_equal(x[1, :1], b[:1])
    np.testing.assert_array_equal(y[1, :1], b[1:])
    assert not x[1, 1:].any() and not y[1, 1:].any()


def test_pad_batch_errors():
    with pytest.raises(ValueError, match=r"^rolls:"):
        pad_batch([])
    with pytest.raises(ValueError, match=r"^rolls\[1\]:"):
        pad_batch([np.zeros((3, 88)), np.zeros((1, 88))])
    with pytest.raises(ValueError, match=r"^rolls\[0\]:"):
        pad_batch([np.zeros((3, 12))])


@pytest.mark.parametrize(
    "content, what",
    [
        ("[1, 2]", "JSON object"),
        ('{"train": 3}', "list of chorales"),
        ('{"train": [[60, 62]]}', "list of steps"),
        ('{"train": [[[60]]', "JSON"),
    ],
)
def test_malformed_file(tmp_path, content, what):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=what) as e:
        load_jsb(path)
    assert str(path) in str(e.value)


def test_the_shipped_copy_has_the_published_split():
    splits = load_jsb()
    sizes = {k: (len(v), sum(len(r) for r in v)) for k, v in splits.items()}
    assert sizes == {
        "train": (229, 13807),
        "valid": (76, 4602),
        "test": (77, 4725),
    }


def test_the_shipped_copy_is_the_original_file():
    # The original's JSON, compacted and gzipped: the same chorales, note for note.
    original = JSB.read_bytes() if JSB.exists() else None
    if original is None:
        pytest.skip(f"{JSB} (the original file) is not beside this checkout")
    assert hashlib.sha256(original).hexdigest() == music.JSB_SHA256
    assert json.loads(gzip.decompress(music.JSB_PATH.read_bytes())) == json.loads(
        original
    )


def test_a_gzipped_file_loads(tmp_path):
    path = tmp_path / "jsb.json.gz"
    path.write_bytes(gzip.compress(json.dumps({"train": [[[60]]]}).encode()))
    np.testing.assert_array_equal(load_jsb(path)["train"][0][0, 39], 1.0)
    (tmp_path / "bad.json.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="not a UTF-8 JSON file"):
        load_jsb(tmp_path / "bad.json.gz")

"""Checkpoints: round trip, keep-N, and what a killed or damaged save leaves behind
(no manifest, an Orbax temporary directory, a truncated or overwritten file)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnnjax.train import checkpoint, step
from rnnjax.train.checkpoint import CheckpointError, Checkpoints, CheckpointWarning


def state(value=0.0):
    params = {"w": jnp.full((3, 4), value), "b": jnp.arange(4.0) + value}
    st = step.init_state(params, optax.adam(1e-3))
    return st._replace(step=jnp.int32(int(value)))


def assert_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert np.array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture
def saved(tmp_path):
    """Steps 1, 2, 3 saved with keep=2: 2 and 3 remain."""
    with Checkpoints(tmp_path / "ck", keep=2) as ckpts:
        for s in (1, 2, 3):
            ckpts.save(s, state(s))
    return tmp_path / "ck"


def largest_file(step_dir):
    files = [p for p in step_dir.rglob("*") if p.is_file()]
    files = [p for p in files if p.name != checkpoint.MANIFEST]
    return max(files, key=lambda p: p.stat().st_size)


def test_round_trip_and_keep(saved):
    with Checkpoints(saved, keep=2) as ckpts:
        assert ckpts.steps() == [2, 3]
        assert_equal(ckpts.restore(3, state()), state(3))
        step_, restored = ckpts.restore_latest(state())
    assert step_ == 3
    assert_equal(restored, state(3))
    assert type(restored) is step.TrainState


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete"])
def test_damaged_file_is_named_and_skipped(saved, damage):
    target = largest_file(saved / "3")
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        target.write_bytes(bytes(255 - b for b in data))  # same size, other bytes
    else:
        target.unlink()
    with Checkpoints(saved, keep=2) as ckpts:
        with pytest.raises(CheckpointError, match=str(target)):
            ckpts.restore(3, state())
        with pytest.warns(CheckpointWarning, match="skipping checkpoint 3"):
            step_, restored = ckpts.restore_latest(state())
    assert step_ == 2
    assert_equal(restored, state(2))


def test_uncommitted_step_falls_back_then_is_rewritten(saved):
    # A kill between Orbax's rename and the manifest: the step has no manifest.
    (saved / "3" / checkpoint.MANIFEST).unlink()
    with Checkpoints(saved, keep=2) as ckpts:
        with pytest.raises(CheckpointError, match="never committed"):
            ckpts.verify(3)
        with pytest.warns(CheckpointWarning):
            step_, _ = ckpts.restore_latest(state())
        assert step_ == 2
        (moved,) = ckpts.discard_after(2)
        assert moved.parent.name == "ck_bad"
        assert ckpts.steps() == [2]
        ckpts.save(3, state(30))  # the step can be written again
        assert_equal(ckpts.restore(3, state()), state(30))


def test_orbax_temporary_directory_is_ignored(saved):
    # A kill during Orbax's own write leaves its temporary directory.
    tmp = saved / "4.orbax-checkpoint-tmp-1234567890"
    (tmp / "default").mkdir(parents=True)
    (tmp / "default" / "junk").write_bytes(b"\x00" * 10)
    with Checkpoints(saved, keep=2) as ckpts:
        assert ckpts.steps() == [2, 3]
        ckpts.save(4, state(4))
        assert ckpts.steps() == [3, 4]
        assert_equal(ckpts.restore_latest(state())[1], state(4))


def test_errors(tmp_path, saved):
    with pytest.raises(ValueError, match="keep: expected an int >= 2"):
        Checkpoints(tmp_path / "x", keep=1)
    with pytest.raises(CheckpointError, match="no checkpoints"):
        Checkpoints(tmp_path / "missing", read_only=True)
    with Checkpoints(saved, keep=2) as ckpts:
        with pytest.raises(CheckpointError, match="refuses a step at or before"):
            ckpts.save(3, state(3))
        with pytest.raises(CheckpointError, match="cannot restore"):
            ckpts.restore(3, {"other": jnp.zeros(2)})
    for s in ("2", "3"):
        largest_file(saved / s).write_bytes(b"")
    ckpts = Checkpoints(saved, keep=2)
    with ckpts, pytest.warns(CheckpointWarning), pytest.raises(CheckpointError):
        ckpts.restore_latest(state())
    with Checkpoints(tmp_path / "empty", keep=2) as ckpts:
        assert ckpts.restore_latest(state()) is None


def test_on_save_is_called_between_the_phases(tmp_path):
    """The callback sees the step before the commit (Orbax's files, no manifest)
    and after it (complete)."""
    seen = []

    def on_save(phase, step):
        manifest = (tmp_path / "ck" / str(step) / checkpoint.MANIFEST).exists()
        seen.append((phase, step, manifest))

    with Checkpoints(tmp_path / "ck", keep=2, on_save=on_save) as ckpts:
        ckpts.save(5, state(5))
        ckpts.verify(5)
    assert seen == [("before_commit", 5, False), ("after_commit", 5, True)]
    with pytest.raises(TypeError, match="on_save: expected a callable"):
        Checkpoints(tmp_path / "ck", on_save="pause")

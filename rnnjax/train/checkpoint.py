"""Orbax checkpoints that a killed run can trust.

Each save is synchronous and numbered by the step, in two phases:

1. Orbax writes the state (any pytree of arrays, e.g. a
   [`TrainState`][rnnjax.train.TrainState]) into a temporary directory and renames it to
   ``<directory>/<step>`` (an atomic rename on a local filesystem).
2. rnnjax records the size and SHA-256 of every file in it in
   ``rnnjax_manifest.json``, written to a temporary file, synced and renamed into
   place. This is the commit.

A step is *complete* when its manifest is there and every listed file matches it.
A run killed at any moment leaves at worst one step that is not complete (an
Orbax temporary directory, which Orbax ignores and removes, or a step without a
manifest); damage done later (a truncated or overwritten file) fails the check
with an error that names the file. `Checkpoints.restore_latest` skips such
steps with a `CheckpointWarning` and takes the newest complete one; Orbax
keeps the last ``keep >= 2`` steps, so one always remains after an interrupted
save.

An ``on_save(phase, step)`` callback given to `Checkpoints` is called
between the two phases (``"before_commit"``) and after the second
(``"after_commit"``); tests use it to kill a run at those moments.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import time
import warnings
from collections.abc import Callable

import orbax.checkpoint as ocp

__all__ = ["CheckpointError", "CheckpointWarning", "Checkpoints"]

MANIFEST = "rnnjax_manifest.json"


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete or damaged; the message names the
    step directory or file."""


class CheckpointWarning(UserWarning):
    """A damaged or incomplete checkpoint was skipped."""


class Checkpoints:
    """Step-numbered checkpoints in ``directory``, the last ``keep`` kept.

    Args:
      directory: where the step directories go (created on the first save unless
        ``read_only``).
      keep: how many of the newest steps Orbax keeps; at least 2, so that a save
        interrupted after Orbax removed an old step still leaves a complete one.
      read_only: open existing checkpoints without creating or removing anything.
      on_save: called as ``on_save(phase, step)`` by `save`, with ``phase``
        ``"before_commit"`` once Orbax's files are in place and before the
        manifest (the commit) is written, and ``"after_commit"`` after it.
    """

    def __init__(
        self,
        directory,
        *,
        keep: int = 3,
        read_only: bool = False,
        on_save: Callable[[str, int], None] | None = None,
    ):
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 2:
            raise ValueError(f"keep: expected an int >= 2, got {keep!r}")
        if on_save is not None and not callable(on_save):
            raise TypeError(
                f"on_save: expected a callable (phase, step) or None, got "
                f"{type(on_save).__name__}"
            )
        self.on_save = on_save
        self.directory = pathlib.Path(directory).absolute()
        if read_only and not self.directory.is_dir():
            raise CheckpointError(f"{self.directory}: no checkpoints (no directory)")
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            enable_async_checkpointing=False,
            create=not read_only,
            cleanup_tmp_directories=not read_only,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def steps(self) -> list[int]:
        """Every step Orbax has finalised, complete or not, oldest first."""
        return sorted(self._manager.all_steps())

    def path(self, step: int) -> pathlib.Path:
        """The directory of ``step``."""
        return self.directory / str(step)

    def save(self, step: int, state) -> pathlib.Path:
        """Writes and commits ``state`` as ``step``; returns the step directory."""
        if not self._manager.save(step, args=ocp.args.StandardSave(state)):
            raise CheckpointError(
                f"{self.path(step)}: not saved: Orbax refuses a step at or before its "
                f"latest ({self._manager.latest_step()})"
            )
        if self.on_save is not None:
            self.on_save("before_commit", step)
        _write_manifest(self.path(step))
        if self.on_save is not None:
            self.on_save("after_commit", step)
        return self.path(step)

    def verify(self, step: int) -> None:
        """Raises `CheckpointError` naming the file unless ``step`` is
        complete."""
        verify(self.path(step))

    def restore(self, step: int, target):
        """The state saved as ``step``, laid out like ``target`` (a pytree with the
        saved structure whose arrays give the dtypes, shapes and shardings).

        Raises `CheckpointError` naming the file for an incomplete or
        damaged step, and naming the step for a structure that does not match.
        """
        self.verify(step)
        try:
            return self._manager.restore(step, args=ocp.args.StandardRestore(target))
        except Exception as e:
            raise CheckpointError(f"{self.path(step)}: cannot restore: {e}") from e

    def restore_latest(self, target):
        """``(step, state)`` of the newest complete step, or ``None`` if there are
        no steps. Each newer step that fails is skipped with a
        `CheckpointWarning`; if every step fails, the newest error is
        raised."""
        errors = []
        for step in reversed(self.steps()):
            try:
                return step, self.restore(step, target)
            except CheckpointError as e:
                errors.append(e)
                warnings.warn(
                    f"skipping checkpoint {step}: {e}", CheckpointWarning, stacklevel=2
                )
        if errors:
            raise CheckpointError(
                f"{self.directory}: no complete checkpoint; newest error: {errors[0]}"
            )
        return None

    def discard_after(self, step: int) -> list[pathlib.Path]:
        """Moves the step directories after ``step`` (the skipped, damaged ones) to
        ``<directory>_bad/`` so that training can write those steps again; returns
        where they went."""
        bad_root = self.directory.with_name(self.directory.name + "_bad")
        moved = []
        for later in (s for s in self.steps() if s > step):
            bad_root.mkdir(exist_ok=True)
            dest = bad_root / f"{later}-{time.strftime('%Y%m%d-%H%M%S')}"
            while dest.exists():
                dest = dest.with_name(dest.name + "+")
            shutil.move(self.path(later), dest)
            moved.append(dest)
        self._manager.reload()
        return moved

    def close(self) -> None:
        """Releases Orbax's manager (also on leaving a ``with`` block)."""
        self._manager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _files(step_dir: pathlib.Path) -> list[pathlib.Path]:
    return sorted(
        p
        for p in step_dir.rglob("*")
        if p.is_file() and p.relative_to(step_dir).as_posix() != MANIFEST
    )


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_manifest(step_dir: pathlib.Path) -> None:
    files = {
        p.relative_to(step_dir).as_posix(): {
            "size": p.stat().st_size,
            "sha256": _sha256(p),
        }
        for p in _files(step_dir)
    }
    tmp = step_dir / (MANIFEST + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump({"format": 1, "files": files}, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, step_dir / MANIFEST)
    _fsync_dir(step_dir)


def _fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def verify(step_dir) -> None:
    """Raises `CheckpointError` naming the file unless the step directory
    ``step_dir`` is complete: it has a readable manifest and every file listed in
    it exists with the recorded size and SHA-256."""
    step_dir = pathlib.Path(step_dir)
    manifest = step_dir / MANIFEST
    if not step_dir.is_dir():
        raise CheckpointError(f"{step_dir}: no such checkpoint")
    if not manifest.is_file():
        raise CheckpointError(
            f"{manifest}: missing: the checkpoint was never committed (the run "
            f"stopped while saving it)"
        )
    try:
        files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{manifest}: unreadable manifest ({e})") from None
    for name, expected in files.items():
        path = step_dir / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing from the checkpoint")
        size = path.stat().st_size
        if size != expected["size"]:
            raise CheckpointError(
                f"{path}: damaged: {size} bytes, the checkpoint wrote "
                f"{expected['size']}"
            )
        if _sha256(path) != expected["sha256"]:
            raise CheckpointError(
                f"{path}: damaged: its contents differ from what the checkpoint wrote "
                f"(SHA-256 mismatch)"
            )

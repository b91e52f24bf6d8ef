"""Training metrics on disk: JSON lines, TensorBoard event files and a PNG plot.

A run directory holds ``metrics.jsonl`` (one record per line: ``{"step": s,
"split": "train" | "valid" | "test", <name>: <float>, ...}``), TensorBoard events
under ``tensorboard/`` (scalars ``<split>/<name>``) and, at the end, ``curves.png``.
A resumed run first drops the records after the step it resumes from, so the
files read as one uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import pathlib

__all__ = ["MetricsWriter", "plot", "read"]

JSONL = "metrics.jsonl"
TENSORBOARD = "tensorboard"
PLOT = "curves.png"


def read(path) -> list[dict]:
    """The records of a ``metrics.jsonl``; a cut-off last line (a killed run) is
    skipped, any other unreadable line is an error naming the file and line."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise ValueError(f"{path}: line {number} is not JSON") from None
    return records


def _truncate(path: pathlib.Path, last_step: int) -> None:
    """Keeps the records up to ``last_step`` but the final ``test`` ones (a resumed
    run writes them again); rewrites atomically."""
    kept = [r for r in read(path) if r["step"] <= last_step and r["split"] != "test"]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
    os.replace(tmp, path)


class MetricsWriter:
    """Appends scalar records to ``workdir/metrics.jsonl`` and TensorBoard.

    Args:
      workdir: the run directory (must exist).
      start_step: the step the run starts from; records after it (left by a run
        that was killed after its last checkpoint) are dropped, in the JSON lines
        and, through ``purge_step``, in TensorBoard.
    """

    def __init__(self, workdir, *, start_step: int = 0):
        SummaryWriter = _summary_writer()
        self.workdir = pathlib.Path(workdir)
        path = self.workdir / JSONL
        if path.exists():
            _truncate(path, start_step)
        self._file = path.open("a", encoding="utf-8")
        self._tb = SummaryWriter(
            str(self.workdir / TENSORBOARD), purge_step=start_step + 1
        )

    def write(self, step: int, split: str, values: dict) -> None:
        """One record: ``values`` maps names to numbers (cast to float)."""
        values = {k: float(v) for k, v in values.items()}
        self._file.write(json.dumps({"step": int(step), "split": split, **values}))
        self._file.write("\n")
        self._file.flush()
        for name, value in values.items():
            self._tb.add_scalar(f"{split}/{name}", value, int(step))

    def close(self) -> None:
        """Flushes and closes both files (also on leaving a ``with`` block)."""
        self._file.close()
        self._tb.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _summary_writer():
    """``tensorboardX.SummaryWriter``, imported without PyTorch: tensorboardX
    imports torch when it can (3 s on a CPU machine) only to accept torch tensors,
    and these are floats. Hiding torch works only if it is not imported yet."""
    import sys

    hide = "torch" not in sys.modules and "tensorboardX" not in sys.modules
    if hide:
        sys.modules["torch"] = None  # makes `import torch` raise ImportError
    try:
        from tensorboardX import SummaryWriter
    finally:
        if hide:
            del sys.modules["torch"]
    return SummaryWriter


def plot(records, path, *, title: str = "", metric: str = "loss") -> pathlib.Path:
    """Draws ``metric`` against the step for every split in ``records`` (training
    and evaluation curves on one axis) into a PNG at ``path``. Draws on a bare
    ``Figure`` (the Agg canvas): no display, and pyplot's global backend is left
    alone."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for split in ("train", "valid", "test"):
        points = [
            (r["step"], r[metric])
            for r in records
            if r.get("split") == split and math.isfinite(r.get(metric, math.nan))
        ]
        if points:
            steps, values = zip(*points, strict=True)
            style = "o" if len(points) == 1 else "-"
            ax.plot(steps, values, style, label=split)
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.has_data():
        ax.legend()
    path = pathlib.Path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path

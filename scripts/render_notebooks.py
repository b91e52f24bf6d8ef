"""Executes the notebooks in QUICK mode into ``docs/notebooks/`` for the site.

``notebooks/`` keeps the notebooks without outputs (what users open, what the
tests run). The documentation shows executed copies, made by this script::

    python scripts/render_notebooks.py            # all of them
    python scripts/render_notebooks.py 02_flax    # one

Each copy opens with a note that its outputs come from QUICK mode (tiny sizes:
the numbers show the code running, not the results), and has the same cells as
its source; ``tests/test_docs.py`` checks that the copies are current.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys
import tempfile

import nbclient
import nbformat

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCE = ROOT / "notebooks"
TARGET = ROOT / "docs" / "notebooks"
NOTE = (
    "*Outputs from QUICK mode (tiny sizes, `python scripts/render_notebooks.py`): "
    "they show the code running, not the results. Run the notebook for those.*"
)


def render(path: pathlib.Path) -> nbformat.NotebookNode:
    """``path`` executed top to bottom with ``QUICK=1``, the note cell first."""
    nb = nbformat.read(path, as_version=4)
    env = {
        "QUICK": "1",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
        ),
    }
    os.environ.update(env)  # the kernel inherits this process's environment
    with tempfile.TemporaryDirectory() as cwd:  # what a notebook writes goes here
        client = nbclient.NotebookClient(
            nb,
            timeout=1200,
            kernel_name="python3",
            resources={"metadata": {"path": cwd}},
        )
        client.execute()
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(NOTE))
    return nb


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook stems (default: all)")
    args = parser.parse_args(argv)
    TARGET.mkdir(parents=True, exist_ok=True)
    shutil.copy(SOURCE / "README.md", TARGET / "README.md")
    paths = sorted(SOURCE.glob("*.ipynb"))
    if args.names:
        paths = [p for p in paths if p.stem in args.names]
    for path in paths:
        print(f"executing {path.name}", file=sys.stderr, flush=True)
        nbformat.write(render(path), TARGET / path.name)


if __name__ == "__main__":
    main()

"""The notebooks in notebooks/: stored clean, opening with the set-up cell, and
running top to bottom in QUICK mode (tiny sizes), each in a fresh kernel in a
temporary directory.

QUICK mode is the notebooks' own switch (``QUICK=1`` in the environment). The
kernel imports rnnjax from this checkout (``PYTHONPATH``), reads JSB Chorales from
``../shared/data`` (``JSB_PATH``), draws figures with the inline backend (PNG, no
display), and compiles with ``JAX_DISABLE_MOST_OPTIMIZATIONS=1``: the programs
are tiny, so XLA's optimisation passes cost more time than they save.
"""

from __future__ import annotations

import os
import pathlib
import re

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
JSB = ROOT.parent / "shared" / "data" / "jsb-chorales-quarter.json"
EXPECTED = [
    "01_quickstart",
    "02_flax",
    "03_long_term_dependencies",
    "04_lstm_variants",
    "05_char_rnn",
    "06_custom_cell",
    "07_speed",
    "08_attention_and_generation",
]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# What the set-up cell must do: install rnnjax only when missing (from the URL in
# RNNJAX_REPO), report the backend and the devices, and read the QUICK switch.
SETUP = (
    'importlib.util.find_spec("rnnjax") is None',
    'os.environ.get("RNNJAX_REPO"',
    '"pip", "install"',
    "@ git+{RNNJAX_REPO}",
    "jax.default_backend()",
    "jax.device_count()",
    'QUICK = os.environ.get("QUICK", "0") == "1"',
)


def _ids(paths):
    return [p.stem for p in paths]


def test_the_eight_notebooks_are_there():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_stored_clean_and_opens_with_setup(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code):
        assert cell.outputs == [], f"code cell {i} is stored with outputs"
        assert cell.execution_count is None, f"code cell {i} has an execution count"
    # Only markdown (the title) comes before the set-up cell.
    first = nb.cells.index(code[0])
    assert all(c.cell_type == "markdown" for c in nb.cells[:first])
    missing = [s for s in SETUP if s not in code[0].source]
    assert not missing, f"the first code cell lacks {missing}"
    later = [i for i, c in enumerate(code[1:], 1) if "find_spec" in c.source]
    assert not later, f"code cells {later} repeat the set-up"


@pytest.fixture
def quick_env(monkeypatch):
    """The kernel's environment (a kernel inherits the environment it starts in)."""
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), path])))
    monkeypatch.setenv("QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
    if "JSB_PATH" not in os.environ:
        monkeypatch.setenv("JSB_PATH", str(JSB))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_runs_in_quick_mode(path, tmp_path, quick_env):
    if path.stem == "04_lstm_variants" and not os.path.exists(os.environ["JSB_PATH"]):
        pytest.skip(f"JSB Chorales not found at {os.environ['JSB_PATH']}")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as e:
        pytest.fail(f"{path.name}: {ANSI.sub('', str(e))}", pytrace=False)

"""The notebooks in notebooks/: stored clean, opening with the set-up cell, and
running top to bottom in QUICK mode (tiny sizes), each in a fresh kernel in a
temporary directory.

QUICK mode is the notebooks' own switch (``QUICK=1`` in the environment). The
kernel imports rnnjax from this checkout (``PYTHONPATH``), reads JSB Chorales from
``../shared/data`` where it is (``JSB_PATH``; else the copy rnnjax ships), draws
figures with the inline backend (PNG, no display), and compiles with
``JAX_DISABLE_MOST_OPTIMIZATIONS=1``: the programs are tiny, so XLA's optimisation
passes cost more time than they save.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

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
# What the set-up cell must do: install rnnjax only when missing (from RNNJAX_SOURCE
# or an uploaded wheel), report the backend and the devices, and read the QUICK
# switch.
SETUP = (
    'importlib.util.find_spec("rnnjax") is None',
    'os.environ.get("RNNJAX_SOURCE")',
    'glob.glob("rnnjax-*.whl")',
    '"pip", "install"',
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
    if "JSB_PATH" not in os.environ and JSB.exists():
        monkeypatch.setenv("JSB_PATH", str(JSB))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_runs_in_quick_mode(path, tmp_path, quick_env):
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


def _setup_source():
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    return next(c.source for c in nb.cells if c.cell_type == "code")


# Runs the set-up cell as if rnnjax were not installed (find_spec says so).
_AS_IF_MISSING = """
import importlib.util, sys
real = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name == "rnnjax" else real(name, *a)
exec(compile(open(sys.argv[1]).read(), "setup cell", "exec"))
"""


def _run_setup(tmp_path, env):
    cell = tmp_path / "setup.py"
    cell.write_text(_setup_source())
    return subprocess.run(
        [sys.executable, "-c", _AS_IF_MISSING, str(cell)],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_setup_cell_installs_an_uploaded_wheel(tmp_path):
    """What a Colab user does: build the wheel in a clone, upload it next to the
    notebook, run the first cell. pip installs it (into a target folder here, with
    no dependencies: they are installed), package data included."""
    wheel = ["wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path)]
    built = subprocess.run(
        [sys.executable, "-m", "pip", *wheel, str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    assert len(list(tmp_path.glob("rnnjax-*.whl"))) == 1
    site = tmp_path / "site"
    env = {"PIP_TARGET": str(site), "PIP_NO_DEPS": "1", "RNNJAX_SOURCE": ""}
    result = _run_setup(tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert "QUICK=" in result.stdout
    assert (site / "rnnjax" / "__init__.py").exists()
    assert (site / "rnnjax" / "data" / "jsb_chorales_quarter.json.gz").exists()


def test_setup_cell_without_a_source_says_what_to_do(tmp_path):
    result = _run_setup(tmp_path, {"RNNJAX_SOURCE": ""})
    assert result.returncode != 0
    assert "upload rnnjax-*.whl next to this notebook" in result.stderr

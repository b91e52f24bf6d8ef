"""The repository is clean under ``ruff check`` and ``ruff format --check``."""

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def ruff(*args):
    exe = shutil.which("ruff")
    cmd = [exe] if exe else [sys.executable, "-m", "ruff"]
    return subprocess.run(
        [*cmd, *args, str(ROOT)], capture_output=True, text=True, cwd=ROOT
    )


@pytest.mark.parametrize("args", [("check",), ("format", "--check")])
def test_ruff(args):
    result = ruff(*args)
    assert result.returncode == 0, result.stdout + result.stderr

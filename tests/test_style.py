"""The repository is clean under ``ruff check`` and ``ruff format --check``."""

import ast
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


# ------------------------------------------------------ the house rules (DESIGN.md)

PACKAGE = ROOT / "rnnjax"
MAX_LINES = 500


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted):
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _private(name):
    return name.startswith("_") and not name.startswith("__")


def test_no_module_over_500_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def _private_imports(path):
    """``module:line name`` for each private name imported from another module,
    and each ``module._name`` attribute read of an imported rnnjax module."""
    tree = ast.parse(path.read_text())
    here = _module_name(path)
    found, imported_modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "rnnjax"
        ):
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                if _is_module(target):
                    imported_modules.add(alias.asname or alias.name)
                elif _private(alias.name) and node.module != here:
                    found.append(f"{here}:{node.lineno} {target}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("rnnjax") and alias.asname:
                    imported_modules.add(alias.asname)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and _private(node.attr)
            and isinstance(node.value, ast.Name)
            and node.value.id in imported_modules
        ):
            found.append(f"{here}:{node.lineno} {node.value.id}.{node.attr}")
    return found


def test_no_private_name_imported_across_modules():
    found = [hit for p in _modules() for hit in _private_imports(p)]
    assert not found, f"private names used across modules (promote or move): {found}"

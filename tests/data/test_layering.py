"""``rnnjax.data`` is pure NumPy (JAX only to read keys): no Flax, no Optax."""

import ast
import pathlib

import rnnjax.data

DATA = pathlib.Path(rnnjax.data.__file__).parent
ALLOWED = {"__future__", "collections", "dataclasses", "jax", "json", "numbers"}
ALLOWED |= {"gzip", "numpy", "os", "pathlib", "rnnjax", "sklearn", "sysconfig"}
ALLOWED |= {"typing"}


def imported_roots(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module.split(".")[0]


def test_no_flax_or_optax():
    files = sorted(DATA.glob("*.py"))
    assert len(files) >= 4
    for path in files:
        roots = set(imported_roots(path))
        assert not roots & {"flax", "optax"}, (path.name, roots)
        assert roots <= ALLOWED, (path.name, roots - ALLOWED)


def test_public_names():
    for name in rnnjax.data.__all__:
        obj = getattr(rnnjax.data, name)
        assert not callable(obj) or obj.__doc__, name

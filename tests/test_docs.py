"""The documentation site builds in strict mode and documents every public name."""

import importlib
import inspect
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PUBLIC_MODULES = [
    "rnnjax",
    "rnnjax.models",
    "rnnjax.hardware",
    "rnnjax.train",
    "rnnjax.data",
    "rnnjax.interop",
    "rnnjax.flax.linen",
    "rnnjax.flax.nnx",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs", reason="the docs extras (mkdocs) are not installed")
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def _anchors(site):
    ids = set()
    for page in site.rglob("*.html"):
        ids |= set(re.findall(r'id="([A-Za-z_][\w.]*)"', page.read_text()))
    return ids


def _names(module_name):
    """``(public name, canonical path)`` of every name in ``__all__``."""
    module = importlib.import_module(module_name)
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.ismodule(obj):
            yield name, obj.__name__
        else:
            path = (
                f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
            )
            yield name, path


@pytest.mark.slow
def test_every_public_name_is_documented(site):
    ids = _anchors(site)
    missing = [
        f"{module}.{name}"
        for module in PUBLIC_MODULES
        for name, canonical in _names(module)
        if f"{module}.{name}" not in ids and canonical not in ids
    ]
    assert not missing, f"public names without an API entry (or docstring): {missing}"


def test_every_page_is_in_the_nav():
    config = (ROOT / "mkdocs.yml").read_text()
    docs = ROOT / "docs"
    pages = [
        (pathlib.Path(d) / f).relative_to(docs).as_posix()
        for d, _, files in os.walk(docs, followlinks=True)  # notebooks/ is a link
        for f in files
        if f.endswith((".md", ".ipynb"))
    ]
    assert "notebooks/01_quickstart.ipynb" in pages
    for page in pages:
        assert page in config, f"docs/{page} is not in mkdocs.yml's nav"


RST_ROLE = re.compile(r":(func|class|meth|mod|attr|data|obj|exc):`")


def test_no_rest_markup_leaks_into_the_site(site):
    """Docstrings use what mkdocstrings renders (``[`x`][rnnjax.x]`` cross-refs,
    code), not reST roles or ``::`` literal-block markers."""
    leaks = {}
    for page in site.rglob("*.html"):
        text = page.read_text()
        found = RST_ROLE.findall(text) + re.findall(r"[\w)`]::</p>", text)
        if found:
            leaks[str(page.relative_to(site))] = sorted(set(found))
    assert not leaks, f"raw reST markup in the built site: {leaks}"


def test_every_internal_link_lands_on_an_anchor(site):
    """Links between pages and to headings resolve (``mkdocs --strict`` does not
    check the ``#fragment`` of a link)."""
    ids = {
        page: set(re.findall(r'id="([^"]+)"', page.read_text()))
        for page in site.rglob("*.html")
    }
    dead = []
    for page, _ in ids.items():
        for href in re.findall(r'href="([^"]+)"', page.read_text()):
            if href.startswith(("http:", "https:", "mailto:", "javascript:")):
                continue
            path, _, fragment = href.partition("#")
            if path.startswith("/"):  # site-absolute (the 404 page)
                target = (site / path.lstrip("/")).resolve()
            else:
                target = (page.parent / path).resolve() if path else page
            if target.is_dir():
                target = target / "index.html"
            if path and not target.exists():
                if target.suffix in ("", ".html"):
                    dead.append(f"{page.relative_to(site)} -> {href}")
                continue
            if (
                fragment
                and target.suffix == ".html"
                and fragment not in ids.get(target, set())
            ):
                dead.append(f"{page.relative_to(site)} -> {href}")
    assert not dead, f"links to missing pages or anchors: {dead[:20]}"


def test_the_site_shows_executed_notebooks():
    """docs/notebooks/ holds executed copies of notebooks/ (by
    scripts/render_notebooks.py), with the same cells after its note, so the
    site shows outputs and plots."""
    nbformat = pytest.importorskip("nbformat")
    sources = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert sources
    for src in sources:
        copy = ROOT / "docs" / "notebooks" / src.name
        rerun = "run python scripts/render_notebooks.py"
        assert copy.is_file() and not copy.is_symlink(), f"{copy}: missing; {rerun}"
        want = [c.source for c in nbformat.read(src, as_version=4).cells]
        cells = nbformat.read(copy, as_version=4).cells
        assert "QUICK mode" in cells[0].source
        assert [c.source for c in cells[1:]] == want, f"{copy}: stale; {rerun}"
        code = [c for c in cells if c.cell_type == "code"]
        shown = [c for c in code if c.outputs]
        assert code[0].outputs and len(shown) >= len(code) // 2, copy
        assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)

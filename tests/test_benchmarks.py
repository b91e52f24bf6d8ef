"""The benchmarks' plumbing (no timing is asserted): a quick run of the suite writes
its tables into a results file, between the markers, and a chart; the folder holds
the few scripts a user runs, on one harness, and every study has its line."""

import ast
import importlib.util
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
STUDIES = BENCH / "studies"


def _harness():
    name = "benchmarks_harness"
    if name not in sys.modules:  # a dataclass needs its module registered
        spec = importlib.util.spec_from_file_location(name, BENCH / "harness.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


@pytest.mark.slow
def test_quick_suite_writes_the_marked_block_and_a_chart(tmp_path):
    results, chart = tmp_path / "RESULTS.md", tmp_path / "suite.png"
    results.write_text(
        "# kept\n\n<!-- suite:start -->\nold\n<!-- suite:end -->\n\n## kept too\n"
    )
    cmd = [sys.executable, "benchmarks/suite.py", "--quick", "--warmup", "1"]
    cmd += ["--only", "rnnjax auto,keras", "--results", str(results)]
    cmd += ["--chart", str(chart)]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=300)
    text = results.read_text()
    assert text.startswith("# kept\n\n<!-- suite:start -->\n### The benchmark suite")
    assert text.endswith("<!-- suite:end -->\n\n## kept too\n")
    assert "old" not in text
    for row in ("#### LSTM B=4 T=6 I=3 H=8", "#### GRU B=4", "| keras LSTM |"):
        assert row in text
    assert "| rnnjax auto | " in text and "keras GRU" in text
    assert chart.read_bytes().startswith(b"\x89PNG")


def test_at_most_eight_scripts_beside_the_harness():
    # Seven since kernel_table.py (issue 13: the per-step program, generated);
    # eight since xlstm_cpu.py (xLSTM against the xlstm package).
    scripts = sorted(p.name for p in BENCH.glob("*.py") if p.name != "harness.py")
    assert len(scripts) <= 8, scripts
    assert (BENCH / "harness.py").exists()
    assert not (BENCH / "chunked_projection.py").exists()  # superseded, removed


def test_every_study_has_its_readme_line():
    readme = (STUDIES / "README.md").read_text()
    listed = set(re.findall(r"^- `([\w.]+\.py)`: \S", readme, flags=re.M))
    studies = {p.name for p in STUDIES.glob("*.py")}
    assert studies, "no studies found"
    assert studies == listed, (studies - listed, listed - studies)


def test_every_script_imports_the_harness_from_where_it_lies():
    """Loads every script and study (their ``main`` not run) in a fresh process,
    as ``python benchmarks/...`` would: each finds ``harness`` on its own path."""
    files = sorted(BENCH.glob("*.py")) + sorted(STUDIES.glob("*.py"))
    code = (
        "import importlib.util, sys\n"
        "for i, path in enumerate(sys.argv[1:]):\n"
        "    spec = importlib.util.spec_from_file_location(f'script{i}', path)\n"
        "    sys.modules[spec.name] = importlib.util.module_from_spec(spec)\n"
        "    spec.loader.exec_module(sys.modules[spec.name])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _unroll_calls(path):
    """``(keyword names)`` of each ``rnnjax.unroll(...)`` call in the file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "unroll"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "rnnjax"
        ):
            yield {k.arg for k in node.keywords}


def test_rnnjax_is_called_through_the_harness():
    """``rnnjax.unroll`` is called in the harness (and in gpu.py's checks, with
    lengths and resets), always with ``options=``, never the old keywords."""
    calls = {
        p.relative_to(BENCH).as_posix(): list(_unroll_calls(p))
        for p in [*BENCH.glob("*.py"), *STUDIES.glob("*.py")]
    }
    callers = {name for name, found in calls.items() if found}
    assert callers <= {"harness.py", "gpu.py"}, callers
    for name in callers:
        for keywords in calls[name]:
            assert "options" in keywords, name
            assert not keywords & {"impl", "unroll", "remat", "chunk_size"}, name


def test_harness_unroll_and_stack_take_the_unroll_options():
    import rnnjax

    harness = _harness()
    cell = rnnjax.lstm(5)
    params = cell.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 4, 3))
    want = rnnjax.unroll(cell, params, xs, options=rnnjax.UnrollOptions("scan"))[1]
    got = harness.unroll_fn(cell, impl="fused", unroll=2)(params, xs)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    model = rnnjax.stack(cell, 2, bidirectional=True)
    stack_params = model.init(jax.random.key(2), 3)
    want = model.apply(stack_params, xs)[1]
    got = harness.stack_fn(model, impl="scan", remat="step")(stack_params, xs)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_harness_timers_and_blocks(tmp_path):
    harness = _harness()
    calls = []
    medians = harness.interleaved(
        {"a": (lambda: calls.append("a"),), "b": (lambda: jnp.ones(2),) * 2},
        repeats=3,
        warmup=1,
        block=lambda out: out,
    )
    assert set(medians) == {"a", "b"} and len(medians["b"]) == 2
    assert calls == ["a"] * 4 and all(m >= 0 for m in medians["a"])
    assert harness.median_ms(lambda: jnp.ones(2), repeats=3) >= 0
    path = tmp_path / "R.md"
    path.write_text("head\n<!-- memory:start -->\nold\n<!-- memory:end -->\ntail\n")
    harness.write_block(path, "memory", "new")
    harness.write_block(path, "compile_time", "added")
    assert path.read_text() == (
        "head\n<!-- memory:start -->\nnew\n<!-- memory:end -->\ntail\n\n"
        "<!-- compile_time:start -->\nadded\n<!-- compile_time:end -->\n"
    )


def test_results_page_is_short_and_keeps_its_generated_blocks():
    text = (BENCH / "RESULTS.md").read_text()
    assert len(text.splitlines()) < 300
    for name in ("suite", "memory", "compile_time"):
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        assert text.count(start) == 1 and text.count(end) == 1
        block = text.split(start, 1)[1].split(end, 1)[0]
        assert "- command: `python benchmarks/" in block and "- commit: " in block


def _kernel_table():
    name = "benchmarks_kernel_table"
    if name not in sys.modules:
        _harness()
        sys.modules.setdefault("harness", sys.modules["benchmarks_harness"])
        spec = importlib.util.spec_from_file_location(name, BENCH / "kernel_table.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def test_kernel_table_reads_the_time_loops_of_a_compiled_program():
    """The per-step reading of ``kernel_table.py`` on CPU programs (its TPU and
    GPU rows compile the same way, deviceless): a forward has one time loop, a
    gradient two; kernels and bytes are counted, a slice at its size."""
    from tests.accelerators import deviceless

    table = _kernel_table()
    rows = []
    for mode in ("fwd", "grad"):
        f, args = table._program("scan", "cpu", 4, 16, mode)
        text = jax.jit(f).lower(*args).compile().as_text()
        loops = deviceless.loops(text)
        assert len(loops) == (1 if mode == "fwd" else 2), mode
        step = loops[0]
        assert step.launches >= 1 and step.read > 0 and step.written > 0
        # One step reads a (B, 4H) slice of the projected inputs, not all T steps.
        assert step.read < 4 * 16 * 4 * table.T * 4, step
        rows.append({"target": "cpu", "label": "this CPU", "impl": "scan", "B": 4})
        rows[-1].update(H=16, mode=mode, temp=1024, kernels=0)
        rows[-1]["loops"] = [
            {"kernels": s.kernels, "read": s.read, "written": s.written} for s in loops
        ]
    rows.append({**rows[0], "target": "tpu_v5e", "label": "TPU v5e", "loops": []})
    rows.append({**rows[0], "impl": "pallas", "error": "RESOURCE_EXHAUSTED: vmem"})
    text = table.table(rows, ["GPU (needs the CUDA plugin)"])
    assert text.count("\n| ") == len(rows)  # one line each, after the header
    assert "no time loop" in text and "refused: RESOURCE_EXHAUSTED" in text
    assert "a model, not a measurement" in text and "not compiled: GPU" in text


def test_the_kernel_table_is_in_the_docs():
    text = (ROOT / "docs" / "kernels.md").read_text()
    start, end = "<!-- kernel_table:start -->", "<!-- kernel_table:end -->"
    assert text.count(start) == 1 and text.count(end) == 1
    block = text.split(start, 1)[1].split(end, 1)[0]
    assert "- command: `python benchmarks/kernel_table.py" in block
    assert "| TPU v5e |" in block and "| H200 (sm_90) |" in block
    assert "model, not a measurement" in block


def _xlstm_cpu():
    name = "benchmarks_xlstm_cpu"
    if name not in sys.modules:
        _harness()
        sys.modules.setdefault("harness", sys.modules["benchmarks_harness"])
        spec = importlib.util.spec_from_file_location(name, BENCH / "xlstm_cpu.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def test_quick_xlstm_cpu_writes_its_tables_and_its_block(tmp_path):
    """``xlstm_cpu.py --quick`` in this process (its one RSS child runs apart):
    every part's table, the rows agreeing on ``h``, the marked block replaced."""
    pytest.importorskip("xlstm")
    out, results = tmp_path / "x.md", tmp_path / "RESULTS.md"
    results.write_text(
        "# kept\n<!-- xlstm_cpu:start -->\nold\n<!-- xlstm_cpu:end -->\n"
    )
    _xlstm_cpu().main(["--quick", "--out", str(out), "--results", str(results)])
    text = out.read_text()
    for row in (
        "| 16 | rnnjax chunkwise 8 | ",
        "| 16 | rnnjax parallel | ",
        "| 16 | rnnjax scan | skipped: T > 0",
        "| 16 | mlstm_kernels native_custbw 8 (1 thread) | ",
        "| 16 | xlstm parallel_stabilized_simple (1 thread) | ",
        "| 8 | rnnjax slstm scan | ",
        "| 8 | xlstm sLSTMCell vanilla (1 thread) | ",
        "- command: `python benchmarks/xlstm_cpu.py --quick`",
        "- CPU flags (rnnjax.hardware.cpu_flags): ",
    ):
        assert row in text, row
    mlstm, memory = text.split("peak memory")
    errors = re.findall(r"^\| 16 \| .* \| ([0-9.e+-]+) \|$", mlstm, flags=re.M)
    assert len(errors) == 6 and max(map(float, errors)) < 1e-4, errors
    memory = re.search(r"^\| 16 \| (.*) \| ([0-9.]+) \|$", memory, flags=re.M)
    assert memory and "-" not in memory.group(1), memory
    block = results.read_text()
    assert (
        block.startswith("# kept\n<!-- xlstm_cpu:start -->\n### xLSTM")
        and "old" not in block
    )
    assert "| mLSTM T=16 | " in block and "| sLSTM H=8 | " in block
    assert "`benchmarks/results/x.md`" in block
    # --render: the block again from the tables alone (their rounded numbers)
    results.write_text("<!-- xlstm_cpu:start -->\n<!-- xlstm_cpu:end -->\n")
    _xlstm_cpu().main(
        ["--render", "--quick", "--out", str(out), "--results", str(results)]
    )
    rendered = results.read_text()
    for line in ("| mLSTM T=16 | ", "| sLSTM H=8 | ", "- command: `python benchmarks"):
        assert rendered.count(line) == 1, line


def test_the_xlstm_block_is_on_the_results_page():
    text = (BENCH / "RESULTS.md").read_text()
    start, end = "<!-- xlstm_cpu:start -->", "<!-- xlstm_cpu:end -->"
    assert text.count(start) == 1 and text.count(end) == 1
    block = text.split(start, 1)[1].split(end, 1)[0]
    assert "- command: `python benchmarks/xlstm_cpu.py" in block
    assert "`benchmarks/results/xlstm_cpu.md`" in block
    assert (BENCH / "results" / "xlstm_cpu.md").exists()

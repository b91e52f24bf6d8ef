"""The benchmark suite's plumbing (no timing is asserted): a quick run of two
contenders writes its tables into a results file, between the markers, and a
chart."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


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

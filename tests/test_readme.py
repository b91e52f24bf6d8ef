"""The README's runnable examples run: the Python blocks that start with an import,
and the command-line block pasted in order."""

import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import FAST_COMPILE

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCKS = [
    block
    for block in re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    if block.startswith(("import ", "from "))
]


def test_readme_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, fast_compile):
    exec(compile(BLOCKS[index], f"README.md example {index}", "exec"), {})


# --------------------------------------------------------- the command-line block

CLI_BLOCK = re.search(r"```bash\n(rnnjax train.*?)```", README.read_text(), re.S)
# Appended to each `rnnjax train` line: a tiny run (the README's sizes take hours).
TINY = [
    "--config.model.hidden_size=8",
    "--config.batch_size=4",
    "--config.seq_len=8",
    "--config.eval_every=2",
    "--config.checkpoint_every=2",
    "--config.log_every=2",
    "--config.keep=2",
    "--config.sample.length=5",
    "--cpu-devices=1",
]


def _commands():
    lines = [line.split("#")[0].strip() for line in CLI_BLOCK.group(1).splitlines()]
    return [shlex.split(line) for line in lines if line]


def _tiny(argv, steps):
    if argv[1] != "train":
        if argv[1] == "sample":
            argv = [*argv, "--length", "5"]
        return argv
    extra = [f"--config.steps={steps}", *TINY]
    if "jsb" in " ".join(argv):  # no sample section in the jsb configs
        extra = [e for e in extra if not e.startswith("--config.sample")]
    return [*argv, *extra]


def test_readme_command_lines_run_in_order(tmp_path):
    """Pasting the README's command block in order works (each `train` shrunk to a
    few steps; `--resume` lines get more steps, so that they continue)."""
    commands = _commands()
    assert [c[:2] for c in commands][:1] == [["rnnjax", "train"]]
    runs = [_tiny(argv, 4 if "--resume" in argv else 2)[1:] for argv in commands]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JAX_PLATFORMS": "cpu",
        **FAST_COMPILE,
    }
    result = subprocess.run(  # one process: JAX starts once
        [sys.executable, "-c", _IN_ORDER, json.dumps(runs)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "runs").is_dir()


# Runs each argv with rnnjax's command in turn; stops at the first failure.
_IN_ORDER = """
import json, shlex, sys
from rnnjax import cli
for argv in json.loads(sys.argv[1]):
    status = cli.main(argv)
    if status:
        sys.exit(f"rnnjax {shlex.join(argv)}: exit status {status}")
"""
